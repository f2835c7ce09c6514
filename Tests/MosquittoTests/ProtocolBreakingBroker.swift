import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A TCP server on a free loopback port that speaks just enough MQTT to let a client connect, then breaks
/// the protocol: every connection gets a CONNACK followed by a CONNECT (a packet only clients send).
/// libmosquitto answers that with `MOSQ_ERR_PROTOCOL`, one of the errors after which its network thread
/// ends instead of reconnecting, so each connection ends in a fatal disconnect.
/// With `hangsUpAfterConnack` it closes the connection after the CONNACK instead: a lost connection, after which
/// the network thread waits its backoff and reconnects by itself. With `closesOnPublish` it answers the CONNACK alone,
/// and closes the connection when a PUBLISH arrives, without answering it (as mosquitto 2.0 may for one it refuses).
/// With `neverAnswers` it reads the CONNECT and answers nothing, until the client hangs up. With
/// `answersOnlyTheFirstPublish` it reads ``heldPublishes`` PUBLISHes, answers the first with a PUBACK and holds the
/// others' back for good, as a broker with Nagle's algorithm on holds them until the client's TCP acknowledgement.
/// With `neverAcknowledges` it answers the CONNACK alone and reads (and counts) every PUBLISH, answering none; with
/// `readsWhenTold`, the same, but it reads nothing until ``startReading()``, as a broker that has stalled.
final class ProtocolBreakingBroker: Sendable {
    enum Behaviour: Sendable {
        case breaksProtocol, hangsUpAfterConnack, closesOnPublish, neverAnswers, answersOnlyTheFirstPublish, neverAcknowledges
        case readsWhenTold
    }

    static let heldPublishes = 5

    let port: Int
    private let listener: Int32
    private let counter = Counter()
    private let publishCounter = Counter()
    private let closed = Atomic<Bool>(false)
    private let reading = Counter()
    private let accepted = Descriptors()

    private final class Counter: Sendable {
        let value = Atomic<Int>(0)
    }

    /// The connections accepted, for `hangUp`.
    private final class Descriptors: Sendable {
        let list = Mutex<[Int32]>([])
    }

    /// Connections accepted so far.
    var connections: Int { counter.value.load(ordering: .relaxed) }
    /// PUBLISH packets received so far (`closesOnPublish`).
    var publishes: Int { publishCounter.value.load(ordering: .relaxed) }

    var url: String { "mqtt://127.0.0.1:\(port)" }

    /// `readsWhenTold`: reads from now on.
    func startReading() { reading.value.store(1, ordering: .relaxed) }

    /// Ends every connection accepted so far (`shutdown`; the thread serving it closes it), and reads from now on.
    func hangUp() {
        accepted.list.withLock { fds in
            for fd in fds { shutdown(fd, Int32(SHUT_RDWR)) }
            fds.removeAll()
        }
        startReading()
    }

    convenience init(hangsUpAfterConnack: Bool = false) throws {
        try self.init(hangsUpAfterConnack ? .hangsUpAfterConnack : .breaksProtocol)
    }

    init(_ behaviour: Behaviour) throws {
        let listener = tcpSocket()
        guard listener >= 0 else { throw BrokerError(message: "socket() failed") }
        var yes: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 64) == 0 else {
            Glibc.close(listener)
            throw BrokerError(message: "bind()/listen() failed")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        self.listener = listener
        let (counter, publishCounter, reading, accepted) = (self.counter, self.publishCounter, self.reading, self.accepted)
        Thread.detachNewThread {
            while true {
                let fd = accept(listener, nil, nil)
                if fd < 0 {
                    if errno == EINTR { continue }
                    return  // closed
                }
                counter.value.wrappingAdd(1, ordering: .relaxed)
                accepted.list.withLock { $0.append(fd) }
                Thread.detachNewThread { Self.serve(fd, behaviour, publishes: publishCounter, reading: reading) }
            }
        }
    }

    /// Reads the CONNECT, answers CONNACK (success, no properties) and goes on as `behaviour` says.
    private static func serve(_ fd: Int32, _ behaviour: Behaviour, publishes: Counter, reading: Counter) {
        defer { Glibc.close(fd) }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        func readByte() -> UInt8? {
            var byte: UInt8 = 0
            return recv(fd, &byte, 1, 0) == 1 ? byte : nil
        }
        /// Reads one packet; returns its first byte and the rest after the length.
        func readPacket() -> (type: UInt8, body: [UInt8])? {
            guard let type = readByte() else { return nil }
            var remaining = 0
            var shift = 0
            while let byte = readByte() {
                remaining |= Int(byte & 0x7F) << shift
                shift += 7
                if byte & 0x80 == 0 { break }
            }
            var body: [UInt8] = []
            for _ in 0..<remaining {
                guard let byte = readByte() else { return nil }
                body.append(byte)
            }
            return (type, body)
        }
        guard readPacket()?.type == 0x10 else { return }
        if behaviour == .neverAnswers {
            var byte: UInt8 = 0
            while case let read = recv(fd, &byte, 1, 0), read == 1 || (read < 0 && (errno == EAGAIN || errno == EINTR)) {}
            return
        }
        let reply: [UInt8] = behaviour == .breaksProtocol ? [0x20, 0x03, 0x00, 0x00, 0x00, 0x10, 0x00] : [0x20, 0x03, 0x00, 0x00, 0x00]
        _ = reply.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        switch behaviour {
        case .hangsUpAfterConnack, .neverAnswers:
            return
        case .neverAcknowledges:
            countPublishes(fd, into: publishes)
        case .readsWhenTold:
            for _ in 0..<3_000 where reading.value.load(ordering: .relaxed) == 0 { usleep(10_000) }  // 30 s at most
            countPublishes(fd, into: publishes)
        case .breaksProtocol:
            while readByte() != nil {}
        case .closesOnPublish:
            var timeout = timeval(tv_sec: 30, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            while let (type, _) = readPacket() {
                if type & 0xF0 == 0x30 {
                    publishes.value.wrappingAdd(1, ordering: .relaxed)
                    return
                }
            }
        case .answersOnlyTheFirstPublish:
            var timeout = timeval(tv_sec: 30, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var first: [UInt8]?
            while let (type, body) = readPacket() {
                guard type & 0xF0 == 0x30, body.count >= 2 else { continue }
                let topicLength = Int(body[0]) << 8 | Int(body[1])
                guard body.count >= 2 + topicLength + 2 else { return }
                // QoS 1: the packet identifier follows the topic.
                if first == nil { first = Array(body[(2 + topicLength)..<(4 + topicLength)]) }
                let count = publishes.value.wrappingAdd(1, ordering: .relaxed).newValue
                if count == heldPublishes, let first {
                    let puback: [UInt8] = [0x40, 0x02] + first
                    _ = puback.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                }
            }
        }
    }

    /// Reads the connection in bulk until it ends, counting the PUBLISH packets in it (fast enough for tens of thousands).
    private static func countPublishes(_ fd: Int32, into publishes: Counter) {
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var pending: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while case let count = recv(fd, &chunk, chunk.count, 0), count > 0 {
            pending += chunk[..<count]
            var start = 0
            // Whole packets: the first byte, a variable-length remaining length, the rest.
            while pending.count - start >= 2 {
                var remaining = 0, shift = 0, at = start + 1
                while at < pending.count, at - start <= 4 {
                    remaining |= Int(pending[at] & 0x7F) << shift
                    shift += 7
                    at += 1
                    if pending[at - 1] & 0x80 == 0 { break }
                }
                guard pending[at - 1] & 0x80 == 0, pending.count - at >= remaining else { break }
                if pending[start] & 0xF0 == 0x30 { publishes.value.wrappingAdd(1, ordering: .relaxed) }
                start = at + remaining
            }
            pending.removeFirst(start)
        }
    }

    /// Stops accepting. Idempotent: closing a descriptor number twice could close another test's socket.
    func close() {
        guard !closed.exchange(true, ordering: .sequentiallyConsistent) else { return }
        shutdown(listener, Int32(SHUT_RDWR))
        Glibc.close(listener)
    }

    deinit { close() }
}
