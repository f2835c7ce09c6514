import GatehouseProtocol
// Logging is a dependency of Mosquitto (its client takes a Logger); the CLI only builds a quiet logger for it.
import Logging
import Mosquitto

/// A connected broker client plus the topic names of the chosen base topic, for the lifetime of one command.
struct BrokerSession: Sendable {
    /// The connected client.
    let client: MosquittoClient
    /// Topic names under the base topic.
    let topics: Topics

    /// Subscribes to `filters` at QoS 1, turning broker refusals into a clear error.
    func subscribe(_ filters: [String]) async throws {
        do {
            try await client.subscribe(filters, qos: .atLeastOnce)
        } catch let error as MosquittoError {
            throw CtlError.usage("cannot subscribe to \(filters.joined(separator: ", ")): \(error.message)")
        }
    }

    /// Publishes at QoS 1 and waits for the broker's PUBACK.
    func publish(_ topic: String, _ payload: [UInt8], properties: MQTTProperties = .init()) async throws {
        do {
            try await client.publish(
                topic: topic,
                payload: payload,
                qos: .atLeastOnce,
                retain: false,
                properties: properties
            )
        } catch let error as MosquittoError {
            throw CtlError.usage("cannot publish to \(topic): \(error.message)")
        }
    }
}

/// What the command loop sees: broker messages interleaved with clock ticks, so deadlines are honoured even
/// when nothing arrives.
enum BrokerEvent: Sendable {
    /// A message from the broker.
    case message(MQTTMessage)
    /// Time passed.
    case tick
    /// The client's message stream ended (the client stopped).
    case closed
}

/// Reads broker messages with deadlines.
///
/// It wraps the single iterator of the merged event stream; one `Inbox` exists per command and is passed
/// `inout` to the helpers, so consecutive steps (collect retained, then publish, then wait) never lose a message.
struct Inbox {
    private var iterator: AsyncStream<BrokerEvent>.Iterator
    /// True once the connection's message stream has ended.
    private(set) var isClosed = false

    init(_ events: AsyncStream<BrokerEvent>) {
        self.iterator = events.makeAsyncIterator()
    }

    /// The next message, or nil when `deadline` passes first or the stream ends. A nil deadline waits forever.
    mutating func next(before deadline: ContinuousClock.Instant?) async -> MQTTMessage? {
        if isClosed { return nil }
        if let deadline, deadline <= .now { return nil }
        while let event = await iterator.next() {
            switch event {
            case .message(let message):
                return message
            case .tick:
                if let deadline, deadline <= .now { return nil }
            case .closed:
                isClosed = true
                return nil
            }
        }
        isClosed = true
        return nil
    }

    /// Collects what the broker holds for the current subscriptions: retained messages keep arriving right after
    /// SUBACK, so this stops once `quiet` passes without a new retained message, or at `limit` at the latest.
    /// Returns the last message per topic, in first-seen order; empty payloads (cleared retained messages) drop
    /// the topic. Live (non-retained) messages seen meanwhile are kept too, as they are newer.
    mutating func collectRetained(
        quiet: Duration = .milliseconds(300),
        limit: Duration,
        until done: (([String: MQTTMessage]) -> Bool)? = nil
    ) async -> [MQTTMessage] {
        let start = ContinuousClock.now
        let end = start + limit
        var quietEnd = min(start + quiet, end)
        var order: [String] = []
        var latest: [String: MQTTMessage] = [:]
        while let message = await next(before: quietEnd) {
            if message.retain {
                quietEnd = min(.now + quiet, end)
            }
            if message.payload.isEmpty {
                latest[message.topic] = nil
            } else {
                if latest[message.topic] == nil, !order.contains(message.topic) { order.append(message.topic) }
                latest[message.topic] = message
            }
            if let done, done(latest) { break }
        }
        return order.compactMap { latest[$0] }
    }
}

extension BrokerOptions {
    /// Connects to the broker, runs `body` with the session and its inbox, then disconnects.
    ///
    /// A broker that cannot be reached ends the command with exit status 2 and the client's message
    /// (e.g. `cannot reach broker at 127.0.0.1:1883: Connection refused`).
    func withSession<Result: Sendable>(
        connectTimeout: Duration = .seconds(5),
        _ body: (BrokerSession, inout Inbox) async throws -> Result
    ) async throws -> Result {
        let resolved = try resolve()
        let client: MosquittoClient
        do {
            client = try MosquittoClient(options: resolved.options, logger: Self.clientLogger())
            try await client.connect(timeout: connectTimeout)
        } catch let error as MosquittoError {
            throw CtlError.usage(error.message)
        }
        let session = BrokerSession(client: client, topics: resolved.topics)
        let (events, continuation) = AsyncStream.makeStream(of: BrokerEvent.self)
        let result: Swift.Result<Result, any Error> = await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await message in client.messages {
                    continuation.yield(.message(message))
                }
                continuation.yield(.closed)
            }
            group.addTask {
                // Deadlines are checked on every tick; 20 ms is precise enough for settle times and timeouts.
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(20))
                    continuation.yield(.tick)
                }
            }
            var inbox = Inbox(events)
            let result: Swift.Result<Result, any Error>
            do {
                result = .success(try await body(session, &inbox))
            } catch {
                result = .failure(error)
            }
            group.cancelAll()
            return result
        }
        continuation.finish()
        client.stop()
        return try result.get()
    }

    /// The client's logger: silent, because failures reach the user as one-line errors and stdout must stay
    /// parseable; `GATEHOUSE_CTL_LOG_LEVEL=debug` (or `info`, `warning`, ...) sends client logs to stderr.
    private static func clientLogger() -> Logger {
        guard let name = Environment.value("GATEHOUSE_CTL_LOG_LEVEL"), let level = Logger.Level(rawValue: name) else {
            return Logger(label: "gatehousectl.mqtt", factory: { _ in SwiftLogNoOpLogHandler() })
        }
        var logger = Logger(label: "gatehousectl.mqtt", factory: { StreamLogHandler.standardError(label: $0) })
        logger.logLevel = level
        return logger
    }
}
