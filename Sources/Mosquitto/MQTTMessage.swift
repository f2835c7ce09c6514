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
public struct MQTTProperties: Sendable, Equatable {
    /// Topic the receiver should publish its response to (request/response pattern).
    public var responseTopic: String?
    /// Opaque bytes echoed back in the response so the requester can match it.
    public var correlationData: [UInt8]?
    /// Seconds after which the broker drops the message if it is still undelivered.
    public var messageExpiryInterval: UInt32?
    /// MIME type of the payload, e.g. `application/json`.
    public var contentType: String?
    /// Free-form name/value pairs, in order; names may repeat.
    public var userProperties: [MQTTUserProperty]
    /// Incoming only: the identifiers of the subscriptions this message matched (see `subscribe(_:qos:identifier:)`).
    public var subscriptionIdentifiers: [UInt32] = []

    /// Creates a property set; every property is optional. Inlinable: every publish makes one, nearly always empty.
    @inlinable
    public init(
        responseTopic: String? = nil,
        correlationData: [UInt8]? = nil,
        messageExpiryInterval: UInt32? = nil,
        contentType: String? = nil,
        userProperties: [MQTTUserProperty] = []
    ) {
        self.responseTopic = responseTopic
        self.correlationData = correlationData
        self.messageExpiryInterval = messageExpiryInterval
        self.contentType = contentType
        self.userProperties = userProperties
    }

    /// True when no property is set, so nothing needs to be encoded.
    @inlinable
    public var isEmpty: Bool {
        responseTopic == nil && correlationData == nil && messageExpiryInterval == nil && contentType == nil
            && userProperties.isEmpty
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
