import Metrics
import Synchronization

/// Live-view counters (exported on `/metrics`): frames from cameras, frames written to viewers, frames dropped
/// because a viewer could not take them yet, and viewers connected. The totals are kept as atomics too, for the
/// status page.
final class LiveMetrics: Sendable {
    private let framesIn = Counter(label: "gatehouse_live_frames_in_total")
    private let framesSent = Counter(label: "gatehouse_live_frames_sent_total")
    private let framesDropped = Counter(label: "gatehouse_live_frames_dropped_total")
    private let viewerGauge = Gauge(label: "gatehouse_live_viewers")
    private let counts = Atomic<Int>(0)

    /// One live frame from a camera.
    func received() { framesIn.increment() }
    /// One frame written to one viewer.
    func sent() { framesSent.increment() }
    /// One frame a viewer did not get because a newer one replaced it.
    func droppedForSlowViewer() { framesDropped.increment() }
    /// Viewers connected now.
    func viewers(_ count: Int) {
        counts.store(count, ordering: .relaxed)
        viewerGauge.record(count)
    }
    /// The last recorded number of viewers.
    var viewerCount: Int { counts.load(ordering: .relaxed) }
}
