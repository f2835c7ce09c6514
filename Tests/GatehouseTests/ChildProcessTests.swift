import Glibc
import Synchronization
import Testing

@testable import Gatehouse

/// The child process wrapper the embedded mosquitto runs under, with `/bin/sh -c` scripts as children.
/// Serialized: some tests change process-wide state (a signal disposition, the environment).
@Suite(.serialized, .timeLimit(.minutes(1)))
struct ChildProcessTests {
    /// What a child wrote, line by line: as a stream to wait on, and collected.
    final class Output: Sendable {
        let lines: AsyncStream<String>
        private let continuation: AsyncStream<String>.Continuation
        private let collected = Mutex<[String]>([])

        init() { (lines, continuation) = AsyncStream.makeStream(of: String.self) }

        func append(_ line: String) {
            collected.withLock { $0.append(line) }
            continuation.yield(line)
        }

        var all: [String] { collected.withLock { $0 } }

        /// The lines before `marker`, once the child wrote it.
        func lines(before marker: String) async -> [String] {
            var seen: [String] = []
            for await line in lines {
                if line == marker { break }
                seen.append(line)
            }
            return seen
        }
    }

    func shell(_ script: String) async throws -> (ChildProcess, Output) {
        let output = Output()
        let child = try await ChildProcess.spawn(executable: "/bin/sh", arguments: ["-c", script]) { output.append($0) }
        return (child, output)
    }

    @Test func signalsAreAtTheirDefaultEvenWhenTheParentIgnoresSIGTERM() async throws {
        // What swift-service-lifecycle does in the gateway.
        let previous = signal(SIGTERM, SIG_IGN)
        defer { signal(SIGTERM, previous) }
        // The spawned process itself (sh execs grep): neither ignored nor blocked are SIGHUP, SIGINT, SIGTERM.
        // (glibc's internal real-time signals 32 and 33 may show as ignored; they are not ours to reset.)
        let (probe, output) = try await shell("exec grep -E '^Sig(Ign|Blk):' /proc/self/status")
        #expect(await probe.waitForExit() == 0)
        let masks = output.all.compactMap { UInt64($0.split(separator: "\t").last ?? "", radix: 16) }
        #expect(masks.count == 2)
        let ours = [SIGHUP, SIGINT, SIGTERM].reduce(UInt64(0)) { $0 | 1 << UInt64($1 - 1) }
        #expect(masks.allSatisfy { $0 & ours == 0 }, "ignored or blocked signals: \(output.all)")
        // And SIGTERM ends it.
        let (child, ready) = try await shell("echo ready; exec sleep 30")
        _ = await ready.lines(before: "ready")
        child.signal(SIGTERM)
        #expect(await child.waitForExit() == 128 + SIGTERM)
    }

    @Test func ownProcessGroup() async throws {
        let (child, output) = try await shell("echo \"$$ $(cut -d' ' -f5 /proc/$$/stat)\"")
        #expect(await child.waitForExit() == 0)
        let ids = output.all.first?.split(separator: " ").compactMap { Int32($0) } ?? []
        #expect(ids == [child.pid, child.pid])
        #expect(child.pid != getpgrp())
    }

    @Test func stdinIsDevNull() async throws {
        let (child, output) = try await shell("readlink /proc/$$/fd/0; cat; echo read-to-end")
        #expect(await child.waitForExit() == 0)
        #expect(output.all == ["/dev/null", "read-to-end"])
    }

    @Test func systemdVariablesAreWithheld() async throws {
        let names = ChildProcess.withheldEnvironment + ["GATEHOUSE_CHILD_TEST"]
        for name in names { setenv(name, "set-by-test", 1) }
        defer { for name in names { unsetenv(name) } }
        let (child, output) = try await shell("env | grep -E '^(NOTIFY_SOCKET|WATCHDOG_USEC|WATCHDOG_PID|GATEHOUSE_CHILD_TEST)='")
        #expect(await child.waitForExit() == 0)
        #expect(output.all == ["GATEHOUSE_CHILD_TEST=set-by-test"])
    }

    @Test func stdoutAndStderrLinesAreCaptured() async throws {
        let (child, output) = try await shell("printf 'one\\n\\ntwo\\n'; echo three >&2; printf partial")
        #expect(await child.waitForExit() == 0)
        #expect(output.all == ["one", "two", "three", "partial"])
    }

    @Test func exitStatusIsAwaitable() async throws {
        let (child, _) = try await shell("sleep 0.2; exit 7")
        #expect(child.isRunning)
        #expect(await child.waitForExit() == 7)
        #expect(child.exitStatus == 7)
        #expect(!child.isRunning)
        // Stopping one that already ended returns its status at once.
        #expect(await child.terminate(grace: .seconds(5)) == 7)
    }

    @Test func terminateSendsSIGTERM() async throws {
        let (child, output) = try await shell("echo ready; exec sleep 30")
        _ = await output.lines(before: "ready")
        let started = ContinuousClock.now
        #expect(await child.terminate(grace: .seconds(10)) == 128 + SIGTERM)
        #expect(ContinuousClock.now - started < .seconds(5))
    }

    @Test func terminateKillsAChildThatTrapsSIGTERM() async throws {
        let (child, output) = try await shell("trap 'echo got-TERM' TERM; echo ready; while :; do sleep 0.05; done")
        _ = await output.lines(before: "ready")
        let started = ContinuousClock.now
        #expect(await child.terminate(grace: .milliseconds(500)) == 128 + SIGKILL)
        let elapsed = ContinuousClock.now - started
        #expect(elapsed >= .milliseconds(500) && elapsed < .seconds(5))
        #expect(output.all.contains("got-TERM"))  // SIGTERM came first
    }

    @Test func missingExecutableThrows() async {
        await #expect(throws: (any Error).self) {
            _ = try await ChildProcess.spawn(executable: "/nonexistent/mosquitto", arguments: []) { _ in }
        }
    }
}
