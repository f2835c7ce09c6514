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
    private let process = Mutex<pid_t?>(nil)

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
            log_dest file \(directory.appendingPathComponent("mosquitto.log").path)
            log_type error
            log_type warning
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
        let pid = try Self.spawn(
            [Self.executable, "-c", directory.appendingPathComponent("mosquitto.conf").path]
        )
        process.withLock { $0 = pid }
        // Generous: the suite starts dozens of brokers at once on two cores, and 5 s ran out when the box was loaded.
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                process.withLock { $0 = nil }
                let log = (try? String(contentsOf: directory.appendingPathComponent("mosquitto.log"), encoding: .utf8)) ?? ""
                throw BrokerError(message: "mosquitto exited at start (status \(status)) on port \(port): \(log)")
            }
            // Someone else's listener on the port would answer too: only ours counts as started.
            if Self.canConnect(port: port), Self.process(pid, listensOn: port) { return }
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
        guard let pid = process.withLock({ current in defer { current = nil }; return current }) else { return }
        _ = Glibc.kill(pid, signal)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1, errno == EINTR {}
    }

    /// `posix_spawn` with an empty signal mask: the test runner's threads block SIGTERM, and a child
    /// spawned by Foundation's `Process` would inherit that and ignore `stop()`.
    private static func spawn(_ arguments: [String]) throws -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptySet = sigset_t()
        sigemptyset(&emptySet)
        posix_spawnattr_setsigmask(&attributes, &emptySet)
        var defaultSet = sigset_t()
        sigemptyset(&defaultSet)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGUSR1, SIGUSR2] { sigaddset(&defaultSet, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaultSet)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var cArguments = arguments.map { strdup($0) } + [nil]
        defer { for argument in cArguments { free(argument) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, arguments[0], &actions, &attributes, &cArguments, environ)
        guard rc == 0 else { throw BrokerError(message: "cannot start \(arguments[0]): \(String(cString: strerror(rc)))") }
        return pid
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }

    /// Ports this process handed out, so that two brokers of tests running in parallel never share one.
    private static let handedOut = Mutex<Set<Int>>([])

    /// A loopback port nothing listens on, never the same twice in this process, and outside the kernel's range of
    /// ephemeral ports: a port from `bind(0)` is in that range, and any client socket of any process (the tests'
    /// own, by the thousand) could be given it as its local port before the broker binds it, which then exits.
    static func freePort() throws -> Int {
        let ephemeral = ephemeralPorts()
        let below = max(0, ephemeral.lowerBound - 1024), above = max(0, 65535 - ephemeral.upperBound)
        for _ in 0..<1000 where below + above > 0 {
            let pick = Int.random(in: 0..<(below + above))
            let port = pick < below ? 1024 + pick : ephemeral.upperBound + 1 + (pick - below)
            guard canBind(port: port) else { continue }
            if handedOut.withLock({ $0.insert(port).inserted }) { return port }
        }
        throw BrokerError(message: "no free loopback port outside the ephemeral range \(ephemeral)")
    }

    /// `net.ipv4.ip_local_port_range`, or Linux's default where it cannot be read.
    private static func ephemeralPorts() -> ClosedRange<Int> {
        let text = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? ""
        let bounds = text.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        guard bounds.count == 2, bounds[0] <= bounds[1] else { return 32768...60999 }
        return bounds[0]...bounds[1]
    }

    /// The probe is close-on-exec (``tcpSocket()``): an inherited one was the likely cause of a broker that exited at
    /// start (status 1, an empty log), twice in one day of `make test`; not proven.
    private static func canBind(port: Int) -> Bool {
        let fd = tcpSocket()
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = loopback(port: port)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    static func canConnect(port: Int) -> Bool {
        let fd = tcpSocket()
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = loopback(port: port)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    /// Whether the listening socket on 127.0.0.1:`port` is one of `pid`'s descriptors (the inode in
    /// `/proc/net/tcp` against the links in `/proc/<pid>/fd`). Without a readable `/proc/net/tcp` it cannot tell,
    /// and says yes: the port's uniqueness in this process (`freePort`) is then the only guard.
    static func process(_ pid: pid_t, listensOn port: Int) -> Bool {
        let local = "0100007F:" + String(format: "%04X", port)
        guard let table = try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8) else { return true }
        var inode: Substring?
        for line in table.split(separator: "\n") {
            let fields: [Substring] = line.split(separator: " ")
            if fields.count > 9, fields[1] == local, fields[3] == "0A" { inode = fields[9] }
        }
        guard let inode else { return false }
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
        return fds.contains {
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)")) == "socket:[\(inode)]"
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
