import CMosquitto

/// A libmosquitto result number (`MOSQ_ERR_*`), what its functions return and what its disconnect callback
/// reports for a connection that broke without a DISCONNECT from the broker.
///
/// A struct with named constants rather than an enum, so numbers of a newer libmosquitto still round-trip.
/// Use it in `switch` like an enum, or match an error directly: `catch MosquittoResultCode.payloadSize`.
public struct MosquittoResultCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The `mosq_err_t` value.
    public let rawValue: Int32

    /// Creates a result code from libmosquitto's number.
    public init(rawValue: Int32) {
        self.rawValue = rawValue
    }

    /// libmosquitto's text for the code (`mosquitto_strerror`) with its number, e.g. "Invalid arguments provided. (3)".
    /// For `.errno` and `.lookup` the details are in the error's message, which reads `errno` when the call fails.
    public var description: String {
        "\(String(cString: mosquitto_strerror(rawValue))) (\(rawValue))"
    }

    /// Matches a code against a pattern code, so `switch` can use the named constants.
    public static func ~= (pattern: MosquittoResultCode, code: MosquittoResultCode) -> Bool {
        pattern == code
    }

    /// Matches a ``MosquittoError`` carrying this result code: `catch MosquittoResultCode.payloadSize { ... }`.
    public static func ~= (pattern: MosquittoResultCode, error: any Error) -> Bool {
        (error as? MosquittoError)?.resultCode == pattern
    }
}

extension MosquittoResultCode {
    /// `MOSQ_ERR_SUCCESS`.
    public static let success = MosquittoResultCode(MOSQ_ERR_SUCCESS)
    /// `MOSQ_ERR_NOMEM`: out of memory.
    public static let nomem = MosquittoResultCode(MOSQ_ERR_NOMEM)
    /// `MOSQ_ERR_PROTOCOL`: the peer violated the protocol.
    public static let `protocol` = MosquittoResultCode(MOSQ_ERR_PROTOCOL)
    /// `MOSQ_ERR_INVAL`: invalid argument.
    public static let inval = MosquittoResultCode(MOSQ_ERR_INVAL)
    /// `MOSQ_ERR_NO_CONN`: not connected.
    public static let noConnection = MosquittoResultCode(MOSQ_ERR_NO_CONN)
    /// `MOSQ_ERR_CONN_REFUSED`: the broker refused the connection.
    public static let connectionRefused = MosquittoResultCode(MOSQ_ERR_CONN_REFUSED)
    /// `MOSQ_ERR_NOT_FOUND`.
    public static let notFound = MosquittoResultCode(MOSQ_ERR_NOT_FOUND)
    /// `MOSQ_ERR_CONN_LOST`: the connection broke.
    public static let connectionLost = MosquittoResultCode(MOSQ_ERR_CONN_LOST)
    /// `MOSQ_ERR_TLS`: TLS error.
    public static let tls = MosquittoResultCode(MOSQ_ERR_TLS)
    /// `MOSQ_ERR_PAYLOAD_SIZE`: payload too large.
    public static let payloadSize = MosquittoResultCode(MOSQ_ERR_PAYLOAD_SIZE)
    /// `MOSQ_ERR_NOT_SUPPORTED`.
    public static let notSupported = MosquittoResultCode(MOSQ_ERR_NOT_SUPPORTED)
    /// `MOSQ_ERR_AUTH`: authentication failed.
    public static let auth = MosquittoResultCode(MOSQ_ERR_AUTH)
    /// `MOSQ_ERR_ACL_DENIED`.
    public static let aclDenied = MosquittoResultCode(MOSQ_ERR_ACL_DENIED)
    /// `MOSQ_ERR_UNKNOWN`.
    public static let unknown = MosquittoResultCode(MOSQ_ERR_UNKNOWN)
    /// `MOSQ_ERR_ERRNO`: a system call failed; see `errno`.
    public static let errno = MosquittoResultCode(MOSQ_ERR_ERRNO)
    /// `MOSQ_ERR_EAI`: host name lookup failed.
    public static let lookup = MosquittoResultCode(MOSQ_ERR_EAI)
    /// `MOSQ_ERR_PROXY`.
    public static let proxy = MosquittoResultCode(MOSQ_ERR_PROXY)
    /// `MOSQ_ERR_MALFORMED_UTF8`: a topic or string is not valid UTF-8.
    public static let malformedUTF8 = MosquittoResultCode(MOSQ_ERR_MALFORMED_UTF8)
    /// `MOSQ_ERR_KEEPALIVE`: the broker stopped answering pings.
    public static let keepalive = MosquittoResultCode(MOSQ_ERR_KEEPALIVE)
    /// `MOSQ_ERR_MALFORMED_PACKET`.
    public static let malformedPacket = MosquittoResultCode(MOSQ_ERR_MALFORMED_PACKET)
    /// `MOSQ_ERR_DUPLICATE_PROPERTY`.
    public static let duplicateProperty = MosquittoResultCode(MOSQ_ERR_DUPLICATE_PROPERTY)
    /// `MOSQ_ERR_TLS_HANDSHAKE`.
    public static let tlsHandshake = MosquittoResultCode(MOSQ_ERR_TLS_HANDSHAKE)
    /// `MOSQ_ERR_QOS_NOT_SUPPORTED`: the broker does not support the QoS.
    public static let qosNotSupported = MosquittoResultCode(MOSQ_ERR_QOS_NOT_SUPPORTED)
    /// `MOSQ_ERR_OVERSIZE_PACKET`: the packet exceeds the broker's maximum packet size.
    public static let oversizePacket = MosquittoResultCode(MOSQ_ERR_OVERSIZE_PACKET)
    /// `MOSQ_ERR_RETAIN_NOT_SUPPORTED`.
    public static let retainNotSupported = MosquittoResultCode(MOSQ_ERR_RETAIN_NOT_SUPPORTED)
}

extension MosquittoResultCode {
    /// A code as libmosquitto's functions and callbacks return it.
    init(_ value: Int32) {
        self.init(rawValue: value)
    }

    init(_ value: mosq_err_t) {
        self.init(rawValue: Int32(value.rawValue))
    }

    /// Results after which the network loop returns (ending its thread) instead of reconnecting, as libmosquitto
    /// 2.0.11's `mosquitto_loop_forever` does.
    var endsNetworkThread: Bool {
        switch self {
        case .nomem, .protocol, .inval, .notFound, .tls, .payloadSize, .notSupported, .auth, .aclDenied, .unknown,
            .lookup, .proxy:
            true
        default:
            false
        }
    }
}
