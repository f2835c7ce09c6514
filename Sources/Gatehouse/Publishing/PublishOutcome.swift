import GatehouseProtocol
import Mosquitto

/// How safe a publish must be before its completion reports `.safe`.
enum Durability: Sendable {
    /// Never spooled, refused while the broker is not connected (gateway-owned state that is republished
    /// after every reconnect, QoS 0 telemetry, media). QoS 1 shares the outbox's in-flight window; a
    /// `device`'s QoS 0 message keeps its place behind that device's earlier messages, and `source` is
    /// paused like a must-be-safe one's while messages wait for room.
    case bestEffort(MQTTQoS, device: String? = nil, source: (any PublishSource)? = nil)
    /// QoS 1 through the outbox: safe on the broker's PUBACK, or once durably spooled while the broker
    /// cannot be reached. `device` keeps that device's messages in order; `source` is paused while the
    /// in-flight window is full (backpressure).
    case mustBeSafe(device: String, source: (any PublishSource)?)
}

/// One message for the broker.
struct OutboundMessage: Sendable {
    var topic: String
    var payload: [UInt8]
    var retain = false
    /// MQTT 5 properties. A must-be-safe message keeps only its Correlation Data through the spool.
    var properties = MQTTProperties()
}

/// What became of a publish: the one outcome type of the publish path, turned into an `ack` or `nack`
/// in exactly one place (`DeviceSession.answer`).
enum PublishOutcome: Sendable, Equatable {
    /// The broker has it (PUBACK), or it is durably spooled.
    case safe
    /// It is not safe; the device may resend.
    case refused(NackCode, String)

    /// A libmosquitto failure: the broker refused it (PUBACK reason >= 0x80) or could not be reached.
    init(_ error: MosquittoError) {
        self = error.code == .publishRejected
            ? .refused(.brokerRejected, error.message) : .refused(.brokerUnavailable, error.message)
    }

    /// A spool append that failed.
    init(_ error: Spool.AppendError) {
        switch error {
        case .full: self = .refused(.spoolFull, "the gateway's spool is full; retry later")
        case .io(let reason): self = .refused(.brokerUnavailable, "the broker is unavailable and the spool cannot be written: \(reason)")
        }
    }
}

typealias PublishCompletion = @Sendable (PublishOutcome) -> Void

/// Who submits must-be-safe messages and can stop sending more: a device connection. The outbox pauses
/// a source whose message found the in-flight window full and the waiting queue at its high-water mark,
/// and resumes it once PUBACKs have drained the queue below half.
protocol PublishSource: AnyObject, Sendable {
    /// Stops (true) or restarts (false) reading from the source. Calls may arrive from any thread and out
    /// of order: the source applies the one with the highest `order`.
    func setReadingPaused(_ paused: Bool, order: UInt64)
}

/// What the outbox needs of the broker client: a QoS 1 publish whose completion reports the PUBACK.
/// `MosquittoClient` is the real one; tests use an in-memory broker.
protocol BrokerPublisher: Sendable {
    func publish(
        topic: String, payload: [UInt8], qos: MQTTQoS, retain: Bool, properties: MQTTProperties,
        completion: @escaping @Sendable (MosquittoError?) -> Void
    ) throws
    /// Whether a QoS 0 publish may go now: the client's queue of unwritten ones is not full.
    var hasRoomForAtMostOnce: Bool { get }
    /// What runs, once, after `wantRoomForAtMostOnce()`, when there is room again.
    func onRoomForAtMostOnce(_ hook: @escaping @Sendable () -> Void)
    func wantRoomForAtMostOnce()
}

extension MosquittoClient: BrokerPublisher {}
