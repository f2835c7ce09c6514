import AsyncAlgorithms
import Foundation
import Glibc
import Logging
import ServiceLifecycle

/// systemd's notify protocol for `Type=notify` units: `READY=1` once the gateway listens, `WATCHDOG=1`
/// every half `WatchdogSec` while the process is responsive, `STOPPING=1` when shutdown begins. Does nothing
/// outside systemd (no `NOTIFY_SOCKET`).
struct SystemdNotifier: Sendable {
    private let socketPath: String?
    /// Half the watchdog period systemd asked for (`WATCHDOG_USEC`), if any.
    let watchdogInterval: Duration?

    init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        socketPath = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        watchdogInterval = environment["WATCHDOG_USEC"].flatMap(UInt64.init).map { .microseconds($0 / 2) }
    }

    /// Sends one state line as a datagram; an `@` path is in the abstract namespace.
    func notify(_ state: String) {
        guard let socketPath else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var path = Array(socketPath.utf8)
        if path.first == UInt8(ascii: "@") { path[0] = 0 }
        guard path.count < MemoryLayout.size(ofValue: address.sun_path) else { return }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count)
        _ = state.withCString { text in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, text, strlen(text), 0, $0, length) }
            }
        }
    }
}

/// Pings systemd's watchdog while the gateway runs, and says `STOPPING=1` when shutdown starts.
struct SystemdWatchdogService: Service {
    let notifier: SystemdNotifier

    func run() async throws {
        await withGracefulShutdownHandler {
            guard let interval = notifier.watchdogInterval else {
                try? await gracefulShutdown()
                return
            }
            notifier.notify("WATCHDOG=1")
            for await _ in AsyncTimerSequence(interval: interval, clock: .continuous).cancelOnGracefulShutdown() {
                notifier.notify("WATCHDOG=1")
            }
        } onGracefulShutdown: {
            notifier.notify("STOPPING=1")
        }
    }
}
