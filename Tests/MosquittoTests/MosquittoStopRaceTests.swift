import Dispatch
import Foundation
import Logging
import Mosquitto
import Synchronization
import Testing

/// `stop()` racing the network thread's fatal-disconnect path, which schedules a reconnect.
///
/// Before the fix `stop()` joined the network thread (`mosquitto_loop_stop`) while holding the client's
/// lifecycle lock, and the network thread, on a fatal disconnect, took that same lock to schedule its retry:
/// each waited for the other for ever. These tests stop the client inside that window, on purpose.
@Suite struct MosquittoStopRaceTests {
    @Test func fatalProtocolErrorRestartsTheNetworkThread() async throws {
        let broker = try ProtocolBreakingBroker()
        defer { broker.close() }
        var options = try MQTTClientOptions(url: broker.url, clientID: "fatal-\(UInt32.random(in: 0...UInt32.max))")
        options.reconnect = MQTTReconnectPolicy(minimumDelay: .milliseconds(10), maximumDelay: .milliseconds(50))
        let client = try MosquittoClient(options: options, logger: quietLogger)
        try client.start()
        // Each connection ends with MOSQ_ERR_PROTOCOL, which ends the network thread: only the client's own
        // retry (join the old thread, connect, start a new one) brings the next connection. The broker counts a
        // connection when it accepts it, before the client has read its CONNACK; the 4th is accepted only after
        // the 3rd connection's CONNACK and protocol error were handled, so by then 3 were reported connected.
        #expect(try await eventually(timeout: .seconds(10)) { broker.connections >= 4 })
        try await stopWithin(.seconds(5), client)
        var connected = 0
        var reasons: [String] = []
        for await event in client.connectionEvents {
            switch event {
            case .connected: connected += 1
            case .disconnected(let reason): reasons.append(reason)
            }
        }
        #expect(connected >= 3)
        #expect(reasons.contains { $0.lowercased().contains("protocol") })
    }

    /// The network thread is held (by the logger) between deciding to schedule a retry and doing it, and
    /// `stop()` runs right then; other rounds stop at random moments of the connect / fatal disconnect / retry cycle.
    @Test(.timeLimit(.minutes(2))) func stopDuringFatalDisconnectDoesNotDeadlock() async throws {
        let broker = try ProtocolBreakingBroker()
        defer { broker.close() }
        for round in 0..<24 {
            let window = WindowHandler.Window()
            let holdWindow = round % 2 == 0
            var logger = Logger(label: "race") { _ in WindowHandler(window: window, hold: holdWindow ? .milliseconds(100) : .zero) }
            logger.logLevel = .warning
            var options = try MQTTClientOptions(url: broker.url, clientID: "race-\(round)-\(UInt32.random(in: 0...UInt32.max))")
            options.reconnect = MQTTReconnectPolicy(minimumDelay: .milliseconds(1), maximumDelay: .milliseconds(5))
            let client = try MosquittoClient(options: options, logger: logger)
            try client.start()
            // The network thread is inside the fatal-disconnect path (it logged "Lost connection", the retry is next).
            let entered = try await eventually { window.entered.load(ordering: .sequentiallyConsistent) }
            #expect(entered, "round \(round): no fatal disconnect")
            if !holdWindow { try await Task.sleep(for: .milliseconds(Int.random(in: 0...20))) }
            try await stopWithin(.seconds(5), client, round: round)
            #expect(!client.isConnected)
            let after = await #expect(throws: MosquittoError.self) {
                try await client.publish(topic: "x", payload: [1], qos: .atLeastOnce)
            }
            #expect(after?.code == .closed)
        }
    }
}

/// Calls `stop()` on a thread of its own and fails the test (instead of hanging it) if it does not return in time.
private func stopWithin(_ limit: Duration, _ client: MosquittoClient, round: Int = 0) async throws {
    let done = DispatchSemaphore(value: 0)
    Thread.detachNewThread {
        client.stop()
        done.signal()
    }
    let seconds = Double(limit.components.seconds)
    let result = await withCheckedContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(returning: done.wait(timeout: .now() + seconds) == .success) }
    }
    if !result {
        Issue.record("round \(round): stop() did not return within \(limit): deadlock between stop and the network thread")
        throw BrokerError(message: "deadlock")
    }
}

/// Signals when libmosquitto's network thread reports a lost connection (it then goes on to schedule the
/// reconnect) and holds the thread there for `hold`, the first time only.
private struct WindowHandler: LogHandler {
    final class Window: Sendable {
        let entered = Atomic<Bool>(false)
        let armed = Atomic<Bool>(true)
    }

    let window: Window
    let hold: Duration
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .warning
    var metadataProvider: Logger.MetadataProvider?

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        guard event.message.description.hasPrefix("Lost connection to MQTT broker"),
            window.armed.exchange(false, ordering: .sequentiallyConsistent)
        else { return }
        window.entered.store(true, ordering: .sequentiallyConsistent)
        if hold > .zero { Thread.sleep(forTimeInterval: Double(hold.components.attoseconds) / 1e18 + Double(hold.components.seconds)) }
    }
}
