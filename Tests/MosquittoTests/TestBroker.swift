import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A real `mosquitto` on a free loopback port, for live tests.
///
/// The config is generated (`listener PORT 127.0.0.1`, `allow_anonymous true`, `persistence false`, plus
/// `extraConfig`). `kill()` simulates a crash (SIGKILL); `start()` again restarts on the same port.
final class TestBroker: Sendable {
    static let executable = "/usr/sbin/mosquitto"

    let port: Int
    let directory: URL
    private let process = Mutex<Process?>(nil)

    var url: String { "mqtt://127.0.0.1:\(port)" }

    /// Creates the config (and the ACL file, if `acl` is given); does not start the broker.
    init(extraConfig: String = "", anonymous: Bool = true, acl: String? = nil, port: Int? = nil) throws {
        self.port = try port ?? Self.freePort()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("mosq-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var extraConfig = extraConfig
        if let acl {
            let aclURL = directory.appendingPathComponent("acl")
            try acl.write(to: aclURL, atomically: true, encoding: .utf8)
            extraConfig += "\nacl_file \(aclURL.path)"
        }
        let config = """
            listener \(self.port) 127.0.0.1
            allow_anonymous \(anonymous)
            persistence false
            log_dest none
            max_queued_messages 100000
            \(extraConfig)

            """
        try config.write(to: directory.appendingPathComponent("mosquitto.conf"), atomically: true, encoding: .utf8)
    }

    /// Starts a broker (with the config in `directory`) and waits until it accepts connections.
    static func started(extraConfig: String = "", anonymous: Bool = true, acl: String? = nil) async throws -> TestBroker {
        let broker = try TestBroker(extraConfig: extraConfig, anonymous: anonymous, acl: acl)
        try await broker.start()
        return broker
    }

    func start() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.executable)
        process.arguments = ["-c", directory.appendingPathComponent("mosquitto.conf").path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process.withLock { $0 = process }
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            if Self.canConnect(port: port) { return }
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        stop()
        throw BrokerError(message: "mosquitto did not start on port \(port)")
    }

    /// SIGTERM and wait.
    func stop() {
        signal(SIGTERM)
    }

    /// SIGKILL and wait: a crashed broker.
    func kill() {
        signal(SIGKILL)
    }

    private func signal(_ signal: Int32) {
        guard let process = process.withLock({ current in defer { current = nil }; return current }) else { return }
        if process.isRunning {
            _ = Glibc.kill(process.processIdentifier, signal)
        }
        process.waitUntilExit()
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BrokerError(message: "socket() failed") }
        defer { close(fd) }
        var address = loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw BrokerError(message: "bind() failed") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func canConnect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = loopback(port: port)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }
}

struct BrokerError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
