import CMosquitto

/// An MQTT 5 reason code, as the broker sends it in CONNACK, PUBACK, SUBACK, UNSUBACK and DISCONNECT.
///
/// A struct rather than an enum so that codes this list does not name (a newer broker, a private range)
/// still round-trip. Use it in `switch` like an enum (`case .notAuthorized:`), or match an error directly:
/// `catch MQTTReasonCode.notAuthorized` matches a ``MosquittoError`` whose ``MosquittoError/reasonCode`` is 0x87.
public struct MQTTReasonCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The byte on the wire.
    public let rawValue: UInt8

    /// Creates a reason code from its wire value.
    public init(rawValue: UInt8) {
        self.rawValue = rawValue
    }

    /// True for failures (0x80 and above); below 0x80 the operation succeeded, possibly with a qualifier.
    public var isFailure: Bool { rawValue >= 0x80 }

    /// True for PUBACK reasons a retry of the same message cannot change: not authorized, topic name
    /// invalid, packet too large, payload format invalid, retain not supported, QoS not supported.
    /// Every other failure (quota exceeded, unspecified error, server busy, ...) may pass later.
    public var isPermanentPublishRejection: Bool {
        switch self {
        case .notAuthorized, .topicNameInvalid, .packetTooLarge, .payloadFormatInvalid, .retainNotSupported,
            .qosNotSupported:
            true
        default:
            false
        }
    }

    /// libmosquitto's text for the code with its value, e.g. "not authorized (0x87)".
    public var description: String {
        let text = String(cString: mosquitto_reason_string(Int32(rawValue))).lowercased()
        let hex = String(rawValue, radix: 16)
        return "\(text) (0x\(hex.count < 2 ? "0" + hex : hex))"
    }

    /// Matches a code against a pattern code, so `switch` can use the named constants.
    public static func ~= (pattern: MQTTReasonCode, code: MQTTReasonCode) -> Bool {
        pattern == code
    }

    /// Matches a ``MosquittoError`` carrying this reason code: `catch MQTTReasonCode.notAuthorized { ... }`.
    public static func ~= (pattern: MQTTReasonCode, error: any Error) -> Bool {
        (error as? MosquittoError)?.reasonCode == pattern
    }
}

extension MQTTReasonCode {
    /// 0x00: success (also "normal disconnection" and "granted QoS 0").
    public static let success = MQTTReasonCode(rawValue: 0x00)
    /// 0x01: subscription granted with QoS 1.
    public static let grantedQoS1 = MQTTReasonCode(rawValue: 0x01)
    /// 0x02: subscription granted with QoS 2.
    public static let grantedQoS2 = MQTTReasonCode(rawValue: 0x02)
    /// 0x04: the client disconnects and wants its will published.
    public static let disconnectWithWillMessage = MQTTReasonCode(rawValue: 0x04)
    /// 0x10: accepted, but nobody subscribes to the topic.
    public static let noMatchingSubscribers = MQTTReasonCode(rawValue: 0x10)
    /// 0x11: the unsubscribed filter did not exist.
    public static let noSubscriptionExisted = MQTTReasonCode(rawValue: 0x11)
    /// 0x80: unspecified error.
    public static let unspecifiedError = MQTTReasonCode(rawValue: 0x80)
    /// 0x81: malformed packet.
    public static let malformedPacket = MQTTReasonCode(rawValue: 0x81)
    /// 0x82: protocol error.
    public static let protocolError = MQTTReasonCode(rawValue: 0x82)
    /// 0x83: implementation specific error.
    public static let implementationSpecificError = MQTTReasonCode(rawValue: 0x83)
    /// 0x84: unsupported protocol version.
    public static let unsupportedProtocolVersion = MQTTReasonCode(rawValue: 0x84)
    /// 0x85: client identifier not valid.
    public static let clientIdentifierNotValid = MQTTReasonCode(rawValue: 0x85)
    /// 0x86: bad user name or password.
    public static let badUserNameOrPassword = MQTTReasonCode(rawValue: 0x86)
    /// 0x87: not authorized.
    public static let notAuthorized = MQTTReasonCode(rawValue: 0x87)
    /// 0x88: server unavailable.
    public static let serverUnavailable = MQTTReasonCode(rawValue: 0x88)
    /// 0x89: server busy.
    public static let serverBusy = MQTTReasonCode(rawValue: 0x89)
    /// 0x8A: banned.
    public static let banned = MQTTReasonCode(rawValue: 0x8A)
    /// 0x8B: server shutting down.
    public static let serverShuttingDown = MQTTReasonCode(rawValue: 0x8B)
    /// 0x8C: bad authentication method.
    public static let badAuthenticationMethod = MQTTReasonCode(rawValue: 0x8C)
    /// 0x8D: keep alive timeout.
    public static let keepAliveTimeout = MQTTReasonCode(rawValue: 0x8D)
    /// 0x8E: session taken over (another client connected with the same client ID).
    public static let sessionTakenOver = MQTTReasonCode(rawValue: 0x8E)
    /// 0x8F: topic filter invalid.
    public static let topicFilterInvalid = MQTTReasonCode(rawValue: 0x8F)
    /// 0x90: topic name invalid.
    public static let topicNameInvalid = MQTTReasonCode(rawValue: 0x90)
    /// 0x91: packet identifier in use.
    public static let packetIdentifierInUse = MQTTReasonCode(rawValue: 0x91)
    /// 0x92: packet identifier not found.
    public static let packetIdentifierNotFound = MQTTReasonCode(rawValue: 0x92)
    /// 0x93: receive maximum exceeded.
    public static let receiveMaximumExceeded = MQTTReasonCode(rawValue: 0x93)
    /// 0x94: topic alias invalid.
    public static let topicAliasInvalid = MQTTReasonCode(rawValue: 0x94)
    /// 0x95: packet too large.
    public static let packetTooLarge = MQTTReasonCode(rawValue: 0x95)
    /// 0x96: message rate too high.
    public static let messageRateTooHigh = MQTTReasonCode(rawValue: 0x96)
    /// 0x97: quota exceeded.
    public static let quotaExceeded = MQTTReasonCode(rawValue: 0x97)
    /// 0x98: administrative action.
    public static let administrativeAction = MQTTReasonCode(rawValue: 0x98)
    /// 0x99: payload format invalid.
    public static let payloadFormatInvalid = MQTTReasonCode(rawValue: 0x99)
    /// 0x9A: retain not supported.
    public static let retainNotSupported = MQTTReasonCode(rawValue: 0x9A)
    /// 0x9B: QoS not supported.
    public static let qosNotSupported = MQTTReasonCode(rawValue: 0x9B)
    /// 0x9C: use another server.
    public static let useAnotherServer = MQTTReasonCode(rawValue: 0x9C)
    /// 0x9D: server moved.
    public static let serverMoved = MQTTReasonCode(rawValue: 0x9D)
    /// 0x9E: shared subscriptions not supported.
    public static let sharedSubscriptionsNotSupported = MQTTReasonCode(rawValue: 0x9E)
    /// 0x9F: connection rate exceeded.
    public static let connectionRateExceeded = MQTTReasonCode(rawValue: 0x9F)
    /// 0xA0: maximum connect time.
    public static let maximumConnectTime = MQTTReasonCode(rawValue: 0xA0)
    /// 0xA1: subscription identifiers not supported.
    public static let subscriptionIdentifiersNotSupported = MQTTReasonCode(rawValue: 0xA1)
    /// 0xA2: wildcard subscriptions not supported.
    public static let wildcardSubscriptionsNotSupported = MQTTReasonCode(rawValue: 0xA2)
}

extension MQTTReasonCode {
    /// A code as libmosquitto's callbacks hand it over (an `int`).
    init(_ value: Int32) {
        self.init(rawValue: UInt8(truncatingIfNeeded: value))
    }
}
