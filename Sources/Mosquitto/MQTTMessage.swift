/// Quality of service of a publish or subscription.
///
/// QoS 2 is deliberately not offered: the gateway's own sequence numbers and acks de-duplicate,
/// so exactly-once delivery would only add a round trip.
public enum MQTTQoS: Int32, Sendable {
    /// Fire and forget.
    case atMostOnce = 0
    /// Acknowledged by the broker (PUBACK); may be delivered more than once.
    case atLeastOnce = 1
}

/// An MQTT 5 user property: a name/value pair carried with a message.
public struct MQTTUserProperty: Sendable, Equatable {
    /// The property name.
    public var name: String
    /// The property value.
    public var value: String

    /// Creates a user property.
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// The MQTT 5 publish properties Gatehouse uses.
///
/// The set ones are kept in a box of their own (copied on write), and none while none is set: nearly every publish
/// carries the empty set, which then copies and destroys as one word instead of six fields (docs/benchmarks.md,
/// "Optimisations").
public struct MQTTProperties: Sendable, Equatable {
    /// Topic the receiver should publish its response to (request/response pattern).
    public var responseTopic: String? {
        get { box?.fields.responseTopic }
        set { update { $0.responseTopic = newValue } }
    }
    /// Opaque bytes echoed back in the response so the requester can match it.
    public var correlationData: [UInt8]? {
        get { box?.fields.correlationData }
        set { update { $0.correlationData = newValue } }
    }
    /// Seconds after which the broker drops the message if it is still undelivered.
    public var messageExpiryInterval: UInt32? {
        get { box?.fields.messageExpiryInterval }
        set { update { $0.messageExpiryInterval = newValue } }
    }
    /// MIME type of the payload, e.g. `application/json`.
    public var contentType: String? {
        get { box?.fields.contentType }
        set { update { $0.contentType = newValue } }
    }
    /// Free-form name/value pairs, in order; names may repeat.
    public var userProperties: [MQTTUserProperty] {
        get { box?.fields.userProperties ?? [] }
        set { update { $0.userProperties = newValue } }
    }
    /// Incoming only: the identifiers of the subscriptions this message matched (see `subscribe(_:qos:identifier:)`).
    public var subscriptionIdentifiers: [UInt32] {
        get { box?.fields.subscriptionIdentifiers ?? [] }
        set { update { $0.subscriptionIdentifiers = newValue } }
    }

    fileprivate struct Fields: Equatable {
        var responseTopic: String?
        var correlationData: [UInt8]?
        var messageExpiryInterval: UInt32?
        var contentType: String?
        var userProperties: [MQTTUserProperty] = []
        var subscriptionIdentifiers: [UInt32] = []

        /// Nothing to send: subscription identifiers only come in.
        var isEmptyToSend: Bool {
            responseTopic == nil && correlationData == nil && messageExpiryInterval == nil && contentType == nil && userProperties.isEmpty
        }

        var isEmpty: Bool { isEmptyToSend && subscriptionIdentifiers.isEmpty }
    }

    // @unchecked: written only while the one holder's (`update`).
    @usableFromInline final class Box: @unchecked Sendable {
        fileprivate var fields: Fields
        fileprivate init(_ fields: Fields) { self.fields = fields }
    }

    /// nil while no property is set.
    @usableFromInline var box: Box?

    /// The empty set. Inlinable: nearly every publish makes one.
    @inlinable
    public init() { box = nil }

    /// Creates a property set; every property is optional.
    public init(
        responseTopic: String? = nil,
        correlationData: [UInt8]? = nil,
        messageExpiryInterval: UInt32? = nil,
        contentType: String? = nil,
        userProperties: [MQTTUserProperty] = []
    ) {
        let fields = Fields(
            responseTopic: responseTopic, correlationData: correlationData, messageExpiryInterval: messageExpiryInterval,
            contentType: contentType, userProperties: userProperties)
        box = fields.isEmpty ? nil : Box(fields)
    }

    /// True when no property is set, so nothing needs to be encoded.
    public var isEmpty: Bool { box?.fields.isEmptyToSend ?? true }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.box === rhs.box || lhs.box?.fields ?? Fields() == rhs.box?.fields ?? Fields()
    }

    private mutating func update(_ change: (inout Fields) -> Void) {
        if !isKnownUniquelyReferenced(&box) { box = Box(box?.fields ?? Fields()) }
        change(&box!.fields)
        if box!.fields.isEmpty { box = nil }
    }
}

/// A message received from the broker, copied out of libmosquitto's buffers.
public struct MQTTMessage: Sendable {
    /// The topic the message was published to.
    public var topic: String
    /// The payload bytes.
    public var payload: [UInt8]
    /// The QoS the message was delivered with.
    public var qos: MQTTQoS
    /// True for a retained message sent because of a new subscription, and (with Retain As Published) for
    /// one published retained while subscribed.
    public var retain: Bool
    /// The MQTT 5 properties that came with the message.
    public var properties: MQTTProperties

    /// Creates a message (mostly useful for tests and fakes).
    public init(
        topic: String,
        payload: [UInt8],
        qos: MQTTQoS = .atMostOnce,
        retain: Bool = false,
        properties: MQTTProperties = .init()
    ) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties
    }
}

/// The "last will": a message the broker publishes for the client when it disappears without a clean DISCONNECT.
public struct MQTTWill: Sendable {
    /// Topic the will is published to.
    public var topic: String
    /// Will payload.
    public var payload: [UInt8]
    /// QoS of the will message.
    public var qos: MQTTQoS
    /// Whether the broker retains the will message.
    public var retain: Bool

    /// Creates a will; by default retained with QoS 1, so late subscribers still see the client is gone.
    public init(topic: String, payload: [UInt8], qos: MQTTQoS = .atLeastOnce, retain: Bool = true) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
    }
}

/// A change of the broker connection.
public enum MQTTConnectionEvent: Sendable {
    /// The broker accepted the connection; `sessionPresent` is true when it resumed an old session.
    /// `inflightLimit` is how many QoS 1 and 2 publishes libmosquitto lets be unanswered at once on this connection:
    /// the broker's Receive Maximum from its CONNACK (which replaces ``MQTTClientOptions/maxInflight``), or when a
    /// CONNACK has none the limit libmosquitto kept from before. It holds back any publish beyond it, while it writes
    /// QoS 0 ones at once.
    case connected(sessionPresent: Bool, inflightLimit: Int)
    /// The connection ended or a connection attempt failed; `reason` is a human-readable cause.
    case disconnected(reason: String)
}
