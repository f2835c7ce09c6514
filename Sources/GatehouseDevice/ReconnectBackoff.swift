/// Exponential reconnect backoff with full jitter.
///
/// The n-th consecutive failed attempt (counting from 0) waits a random time between ``minimum`` and
/// `min(maximum, minimum × 2ⁿ)`, so thousands of devices that lose their gateway at once do not all
/// come back in the same instant. The count restarts once a connection gets its `welcome`.
public struct ReconnectBackoff: Sendable, Equatable {
    /// The shortest wait before reconnecting. Default 0.5 s.
    public var minimum: Duration
    /// The longest wait before reconnecting. Default 30 s.
    public var maximum: Duration

    /// Creates a backoff; `maximum` below `minimum` is raised to `minimum`.
    public init(minimum: Duration = .milliseconds(500), maximum: Duration = .seconds(30)) {
        self.minimum = max(minimum, .zero)
        self.maximum = max(maximum, self.minimum)
    }

    /// The wait before reconnect attempt `attempt` (0 for the first retry).
    public func delay(attempt: Int) -> Duration {
        let minimumSeconds = Self.seconds(self.minimum)
        let maximumSeconds = Self.seconds(self.maximum)
        // 2^attempt overflows nothing as a Double, and the cap keeps the result finite.
        let ceiling = min(maximumSeconds, minimumSeconds * Double(sign: .plus, exponent: min(attempt, 62), significand: 1))
        guard ceiling > minimumSeconds else { return self.minimum }
        return .milliseconds(Int64(Double.random(in: minimumSeconds...ceiling) * 1000))
    }

    private static func seconds(_ duration: Duration) -> Double {
        let parts = duration.components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
