import Glibc
import Subprocess
import Synchronization
import SystemPackage

/// A child process run by swift-subprocess, for the embedded mosquitto.
///
/// What the gateway needs from it, and where swift-subprocess 1.0.2 provides it:
/// - every signal at its default disposition and none blocked: swift-service-lifecycle ignores
///   SIGTERM/SIGINT/SIGHUP in the gateway, and an inherited "ignore" would make mosquitto unstoppable by
///   SIGTERM. Subprocess does this on every spawn (`_subprocess_spawnattr_reset_signals`, which sets
///   `POSIX_SPAWN_SETSIGDEF` with all signals and `POSIX_SPAWN_SETSIGMASK` with none; the fork/exec fallback
///   calls `signal(signo, SIG_DFL)` for each and `sigprocmask` with an empty set), so there is nothing to add;
/// - its own process group (`PlatformOptions.processGroupID = 0`), so a Ctrl-C in the terminal reaches the
///   gateway only, and the gateway stops the broker once it has said goodbye through it;
/// - stdin from /dev/null (`input: .none`);
/// - the gateway's environment without systemd's notify socket and watchdog, which are the gateway's;
/// - stdout and stderr as one stream of lines (`error: .combinedWithOutput`, `strings()`);
/// - an awaitable exit and a teardown: SIGTERM, then SIGKILL after a grace (`Execution.teardown(using:)`).
///
/// `Subprocess.run` keeps a process inside a closure, while the embedded broker must outlive the call that
/// starts it (it listens before the service group starts and is stopped last by it). So the closure runs in
/// a `Task` owned by this object: not fire-and-forget, since its value is the exit status that
/// `waitForExit()` and `terminate(grace:)` await. `Execution` must not escape the closure, so signals and
/// teardowns are asked for through `requests` and performed inside it.
final class ChildProcess: Sendable {
    /// Its process id, which is also its process group id.
    let pid: pid_t
    private let requests: AsyncStream<Request>.Continuation
    private let exit: Task<Int32, Never>
    private let outcome: Outcome

    /// Environment variables a child must not inherit: systemd's notify socket and watchdog are the
    /// gateway's, a child must not report readiness or liveness for it.
    static let withheldEnvironment = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"]

    private enum Request: Sendable {
        case signal(Int32)
        case teardown(grace: Duration)
    }

    /// What the closure tells the object, read without awaiting.
    private final class Outcome: Sendable {
        let started = Mutex<CheckedContinuation<pid_t, any Error>?>(nil)
        /// The exit status once it ended.
        let status = Mutex<Int32?>(nil)
        /// Whether the closure returned (the child closed its output) while the process may still run.
        let closureDone = Mutex(false)

        func resumeStart(_ result: Result<pid_t, any Error>) {
            started.withLock { $0.take() }?.resume(with: result)
        }
    }

    private init(pid: pid_t, requests: AsyncStream<Request>.Continuation, exit: Task<Int32, Never>, outcome: Outcome) {
        self.pid = pid
        self.requests = requests
        self.exit = exit
        self.outcome = outcome
    }

    /// Starts `executable` with `arguments`; its stdout and stderr go to `output`, line by line (empty lines
    /// skipped). Returns once it runs; throws when it cannot be started.
    ///
    /// - Parameter grace: how long a cancelled run waits after SIGTERM before SIGKILL (`terminate(grace:)`
    ///   chooses its own).
    static func spawn(
        executable: String,
        arguments: [String],
        grace: Duration = .seconds(10),
        output: @escaping @Sendable (String) -> Void
    ) async throws -> ChildProcess {
        var options = PlatformOptions()
        options.processGroupID = 0
        options.teardownSequence = [.gracefulShutDown(allowedDurationToNextStep: grace)]
        let environment = Environment.inherit.updating(
            Dictionary(uniqueKeysWithValues: withheldEnvironment.map { (Environment.Key(stringLiteral: $0), String?.none) })
        )
        let configuration = Configuration(
            executable: .path(FilePath(executable)),
            arguments: Arguments(arguments),
            environment: environment,
            platformOptions: options
        )
        let (requestStream, requests) = AsyncStream.makeStream(of: Request.self)
        let outcome = Outcome()
        var exit: Task<Int32, Never>?
        let pid = try await withCheckedThrowingContinuation { (started: CheckedContinuation<pid_t, any Error>) in
            outcome.started.withLock { $0 = started }
            exit = Task {
                let status = await Self.run(configuration, requests: requestStream, outcome: outcome, output: output)
                outcome.status.withLock { $0 = status }
                requests.finish()
                return status
            }
        }
        return ChildProcess(pid: pid, requests: requests, exit: exit!, outcome: outcome)
    }

    /// Runs the child to its end; returns its exit status, 128 + the signal that ended it, or -1 when it
    /// could not be started (the error went to `spawn`).
    private static func run(
        _ configuration: Configuration,
        requests: AsyncStream<Request>,
        outcome: Outcome,
        output: @escaping @Sendable (String) -> Void
    ) async -> Int32 {
        do {
            let result = try await Subprocess.run(configuration, input: .none, output: .sequence, error: .combinedWithOutput) { execution in
                outcome.resumeStart(.success(execution.processIdentifier.value))
                await withTaskGroup(of: Void.self) { group in
                    group.addTask {
                        do {
                            for try await line in execution.standardOutput.strings() where !line.isEmpty { output(line) }
                        } catch {
                            output("(output no longer readable: \(error))")
                        }
                    }
                    group.addTask {
                        for await request in requests {
                            switch request {
                            case .signal(let number):
                                try? execution.send(signal: Signal(rawValue: number))
                            case .teardown(let grace):
                                await execution.teardown(using: [.gracefulShutDown(allowedDurationToNextStep: grace)])
                            }
                        }
                    }
                    // Subprocess ends the output when the process exits (even if a grandchild holds the pipe).
                    await group.next()
                    // Set before the request loop ends, so `terminate` knows to cancel instead (see there).
                    outcome.closureDone.withLock { $0 = true }
                    group.cancelAll()
                }
            }
            switch result.terminationStatus {
            case .exited(let code): return code
            case .signaled(let signal): return 128 + signal
            }
        } catch {
            outcome.resumeStart(.failure(error))
            return -1
        }
    }

    /// The exit status (or 128 + signal) once it ended; nil while it runs.
    var exitStatus: Int32? { outcome.status.withLock { $0 } }

    var isRunning: Bool { exitStatus == nil }

    /// Waits until it exited; returns its exit status (or 128 + signal). Waits also in a cancelled task.
    func waitForExit() async -> Int32 {
        await exit.value
    }

    /// Sends a signal, if it still runs.
    func signal(_ number: Int32) {
        requests.yield(.signal(number))
    }

    /// Stops it: SIGTERM, SIGKILL after `grace`; returns the exit status. Safe to repeat and to call after it
    /// ended.
    @discardableResult
    func terminate(grace: Duration) async -> Int32 {
        requests.yield(.teardown(grace: grace))
        if outcome.closureDone.withLock({ $0 }) {
            // It closed its output and so is leaving the closure, where requests are served: cancelling the
            // run performs the teardown sequence given to `spawn` instead.
            exit.cancel()
        }
        return await exit.value
    }
}
