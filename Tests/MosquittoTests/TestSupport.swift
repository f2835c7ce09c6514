import Logging
import Mosquitto
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A logger that discards everything, so test output stays readable.
let quietLogger = Logger(label: "mosquitto-tests", factory: { _ in SwiftLogNoOpLogHandler() })

/// Options for a test client of `broker`, with short reconnect delays.
func testOptions(_ broker: TestBroker, _ clientID: String = "test-\(UInt32.random(in: 0...UInt32.max))") throws
    -> MQTTClientOptions
{
    var options = try MQTTClientOptions(url: broker.url, clientID: clientID)
    options.reconnect = MQTTReconnectPolicy(minimumDelay: .seconds(1), maximumDelay: .seconds(2))
    return options
}

/// Collects a client's incoming messages so tests can wait for them with a deadline.
final class Inbox: Sendable {
    private final class Store: Sendable {
        let messages = Mutex<[MQTTMessage]>([])
    }

    private let store = Store()
    private let task: Task<Void, Never>

    init(_ client: MosquittoClient) {
        let store = self.store
        task = Task { [messages = client.messages] in
            for await message in messages { store.messages.withLock { $0.append(message) } }
        }
    }

    var messages: [MQTTMessage] { store.messages.withLock { $0 } }

    /// Waits until at least `count` messages arrived; returns them all.
    @discardableResult
    func waitFor(count: Int, timeout: Duration = .seconds(5)) async throws -> [MQTTMessage] {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let current = messages
            if current.count >= count { return current }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw BrokerError(message: "expected \(count) messages, got \(messages.count): \(messages.map(\.topic))")
    }

    deinit { task.cancel() }
}

/// Polls `condition` until it holds or `timeout` passes.
func eventually(timeout: Duration = .seconds(5), _ condition: () -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}

extension String {
    var bytes: [UInt8] { Array(utf8) }
}

/// A loopback port whose connections never complete: its listener's accept queue is full (backlog 0 and one
/// connection waiting), so the kernel drops every further SYN and a connect stays pending, retrying for minutes.
final class UnansweredPort: Sendable {
    let port: Int
    private let listener: Int32
    private let filler: Int32

    init() throws {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let listener = tcpSocket()
        let filler = tcpSocket()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ready = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, length) == 0 && listen(listener, 0) == 0 && getsockname(listener, $0, &length) == 0
                    && Glibc.connect(filler, $0, length) == 0
            }
        }
        guard listener >= 0, filler >= 0, ready else {
            close(listener)
            close(filler)
            throw BrokerError(message: "cannot set up a port that answers no SYN")
        }
        (self.listener, self.filler) = (listener, filler)
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit {
        close(filler)
        close(listener)
    }
}

#if canImport(Glibc)
/// A plain thread (not one of Swift's), started at once and joined: for what must happen on a thread of its own.
final class PlainThread {
    private var thread = pthread_t()

    init(_ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        pthread_create(&thread, nil, { argument in
            Unmanaged<Box>.fromOpaque(argument!).takeRetainedValue().body()
            return nil
        }, box)
    }

    func join() { pthread_join(thread, nil) }

    private final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
}
#endif
