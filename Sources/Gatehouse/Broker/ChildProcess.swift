import Foundation
import Glibc
import Synchronization

/// A child process started with posix_spawn. Foundation's `Process` passes on the gateway's ignored signals
/// (swift-service-lifecycle ignores SIGTERM/SIGINT/SIGHUP to catch them itself), so a mosquitto started
/// that way could never be stopped with SIGTERM; here every signal is reset to its default and unblocked.
/// The child gets its own process group, so a Ctrl-C in the terminal reaches the gateway only, and the
/// gateway stops the broker once it has said goodbye through it.
final class ChildProcess: Sendable {
    let pid: pid_t
    private let output: FileHandle
    private let status = Mutex<Int32?>(nil)

    /// Starts `executable` with `arguments`; its stdout and stderr go to `output`, line by line.
    init(executable: String, arguments: [String], output: @escaping @Sendable (String) -> Void) throws {
        var pipeEnds: [Int32] = [0, 0]
        guard pipe(&pipeEnds) == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        let (readEnd, writeEnd) = (pipeEnds[0], pipeEnds[1])
        // Close-on-exec, so no other child inherits them; dup2 gives this child plain copies as 1 and 2.
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)
        defer { close(writeEnd) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 1)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 2)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var all = sigset_t()
        sigfillset(&all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        // systemd's notify socket and watchdog are the gateway's: a child must not report readiness for it.
        let environment = ProcessInfo.processInfo.environment
            .filter { !["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"].contains($0.key) }
            .map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { environment.forEach { free($0) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, environment)
        guard result == 0 else {
            close(readEnd)
            throw POSIXError(.init(rawValue: result) ?? .EIO)
        }
        self.pid = pid
        self.output = FileHandle(fileDescriptor: readEnd, closeOnDealloc: true)
        self.output.readabilityHandler = LineSplitter(output).handler
    }

    /// The exit status (or 128 + signal) once it ended; nil while it runs. Reaps the child.
    func exitStatus() -> Int32? {
        status.withLock { known in
            if let known { return known }
            var raw: Int32 = 0
            let reaped = waitpid(pid, &raw, WNOHANG)
            guard reaped == pid || reaped < 0 else { return nil }
            let signal = raw & 0x7f
            known = reaped < 0 ? -1 : signal == 0 ? (raw >> 8) & 0xff : 128 + signal
            return known
        }
    }

    var isRunning: Bool { exitStatus() == nil }

    /// Sends a signal.
    func signal(_ number: Int32) { kill(pid, number) }
}

/// Cuts a pipe's bytes into lines.
private final class LineSplitter: @unchecked Sendable {
    private let emit: @Sendable (String) -> Void
    private var partial: [UInt8] = []  // only touched by the file handle's serial readability queue

    init(_ emit: @escaping @Sendable (String) -> Void) { self.emit = emit }

    var handler: @Sendable (FileHandle) -> Void {
        { handle in
            let data = handle.availableData
            guard !data.isEmpty else {
                handle.readabilityHandler = nil
                if !self.partial.isEmpty { self.emit(String(decoding: self.partial, as: UTF8.self)) }
                return
            }
            self.partial.append(contentsOf: data)
            while let end = self.partial.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: self.partial[..<end], as: UTF8.self)
                self.partial.removeSubrange(...end)
                if !line.isEmpty { self.emit(line) }
            }
        }
    }
}
