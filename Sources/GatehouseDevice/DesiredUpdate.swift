public import GatehouseProtocol

/// A `desired` frame (PROTOCOL.md 7): what of the desired state the device does not report yet.
///
/// The SDK applies nothing by itself: the device's code applies what it can and reports the result with
/// ``DeviceClient/reportState(_:)``. Each update carries the whole pending delta, so only the newest counts;
/// an empty `delta` means nothing is pending (a value may have been withdrawn: stop applying it).
public struct DesiredUpdate: Sendable, Equatable {
    /// The desired document's version.
    public var version: Int64
    /// The keys whose desired value the reported state does not match yet (nested objects hold only their
    /// pending keys).
    public var delta: JSONObject

    /// Creates an update.
    public init(version: Int64, delta: JSONObject) {
        self.version = version
        self.delta = delta
    }
}

/// Receives ``DesiredUpdate``s one at a time, in order; while it runs, newer updates replace older waiting ones.
public typealias DeviceDesiredHandler = @Sendable (DesiredUpdate) async -> Void
