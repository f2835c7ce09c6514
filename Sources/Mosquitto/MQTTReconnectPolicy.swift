/// How long the client waits between connection attempts: the one backoff policy of `MosquittoClient`.
///
/// Two parts of the client reconnect, and both wait ``delay(attempt:)`` before attempt n:
/// - the network thread (``NetworkLoop``), after a connection was lost or an attempt failed; n starts over
///   once the broker accepts a connection;
/// - the client's own retry task, for the first connection attempt (libmosquitto does not retry a connect
///   that failed at once) and after an error that ends the network thread (protocol error, TLS failure, ...).
///
/// The jitter keeps a fleet of gateways from reconnecting to a restarted broker in lockstep.
public struct MQTTReconnectPolicy: Sendable, Equatable {
    /// The first delay, and the shortest. Default 1 s.
    public var minimumDelay: Duration
    /// The longest delay. Default 30 s.
    public var maximumDelay: Duration
    /// Whether delays grow with the square of the attempt number (true) or linearly. Default true.
    public var exponential: Bool
    /// How much of each delay is random, 0...1: a delay is drawn between `(1 - jitter)` and all of its
    /// backoff step (never below ``minimumDelay``). Default 0.5.
    public var jitter: Double

    /// Creates a policy; `maximumDelay` below `minimumDelay` is raised to it, `jitter` is clamped to 0...1.
    public init(
        minimumDelay: Duration = .seconds(1),
        maximumDelay: Duration = .seconds(30),
        exponential: Bool = true,
        jitter: Double = 0.5
    ) {
        self.minimumDelay = max(minimumDelay, .zero)
        self.maximumDelay = max(maximumDelay, self.minimumDelay)
        self.exponential = exponential
        self.jitter = jitter.isNaN ? 0 : min(max(jitter, 0), 1)
    }

    /// The backoff step before attempt `attempt` (0 for the first retry), without jitter: libmosquitto's curve,
    /// `minimumDelay × (attempt + 1)²` (or `× (attempt + 1)` when not exponential), capped at `maximumDelay`.
    public func step(attempt: Int) -> Duration {
        let n = max(0, min(attempt, 1_000_000)) + 1
        // Integer arithmetic on Duration: exact, and (1,000,001)² fits.
        return min(maximumDelay, minimumDelay * (exponential ? n * n : n))
    }

    /// The delay before attempt `attempt` (0 for the first retry): ``step(attempt:)`` with the jitter applied.
    public func delay(attempt: Int) -> Duration {
        var generator = SystemRandomNumberGenerator()
        return delay(attempt: attempt, using: &generator)
    }

    /// ``delay(attempt:)`` drawing from `generator`.
    public func delay(attempt: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        let step = step(attempt: attempt)
        guard jitter > 0 else { return step }
        let fraction = Double.random(in: (1 - jitter)...1, using: &generator)
        return max(minimumDelay, step * fraction)
    }
}
