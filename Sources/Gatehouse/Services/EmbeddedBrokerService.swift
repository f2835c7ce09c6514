import Logging
import ServiceLifecycle

/// Keeps the embedded mosquitto running: when it dies it is started again after a backoff (0.5 s doubling
/// to 30 s, back to 0.5 s once it ran for a minute). It is first in the service list, so the service group
/// stops it last, after the gateway has published its goodbyes through it.
///
/// After a clean stop (mosquitto saved its database at exit) the spool lets go of what it kept for the
/// broker's unsaved window, so the next start does not publish it again.
struct EmbeddedBrokerService: Service {
    let broker: EmbeddedBroker
    let spool: Spool
    let logger: Logger

    func run() async throws {
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await supervise()
            } onCancel: {
                Task { await broker.stop() }
            }
        } onGracefulShutdown: {
            Task { await broker.stop() }
        }
        // Returns once mosquitto is gone and its pid file removed.
        if await broker.stop() { spool.brokerSavedAll() }
    }

    private func supervise() async {
        var delay = Duration.milliseconds(500)
        while true {
            let started = ContinuousClock.now
            let status = await broker.waitForExit()
            if ContinuousClock.now - started > .seconds(60) { delay = .milliseconds(500) }
            if Task.isShuttingDownGracefully || Task.isCancelled { return }
            let wait = delay
            logger.error("the embedded mosquitto exited (status \(status)); restarting it in \(wait)")
            // A backoff that changes after every exit, not a period: a plain sleep rather than a timer sequence.
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: wait) }
            if Task.isShuttingDownGracefully || Task.isCancelled { return }
            delay = min(delay * 2, .seconds(30))
            do {
                guard try await broker.restart() else { return }
            } catch {
                logger.error("\(error)")
            }
        }
    }
}
