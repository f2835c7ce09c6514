import CMosquitto

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// libmosquitto result codes as `Int32`, the type its functions return.
enum MosquittoResult {
    static let success = MOSQ_ERR_SUCCESS.rawValue
    static let noConnection = MOSQ_ERR_NO_CONN.rawValue
    static let connectionLost = MOSQ_ERR_CONN_LOST.rawValue
    static let errno = MOSQ_ERR_ERRNO.rawValue
    static let lookup = MOSQ_ERR_EAI.rawValue
    static let protocolError = MOSQ_ERR_PROTOCOL.rawValue
    static let malformedPacket = MOSQ_ERR_MALFORMED_PACKET.rawValue
    static let keepalive = MOSQ_ERR_KEEPALIVE.rawValue
    static let tls = MOSQ_ERR_TLS.rawValue
    static let tlsHandshake = MOSQ_ERR_TLS_HANDSHAKE.rawValue

    /// Results after which libmosquitto 2.0.11's `mosquitto_loop_forever` returns (ending the network thread)
    /// instead of reconnecting.
    static func endsNetworkThread(_ rc: Int32) -> Bool {
        switch rc {
        case MOSQ_ERR_NOMEM.rawValue, MOSQ_ERR_PROTOCOL.rawValue, MOSQ_ERR_INVAL.rawValue, MOSQ_ERR_NOT_FOUND.rawValue,
            MOSQ_ERR_TLS.rawValue, MOSQ_ERR_PAYLOAD_SIZE.rawValue, MOSQ_ERR_NOT_SUPPORTED.rawValue, MOSQ_ERR_AUTH.rawValue,
            MOSQ_ERR_ACL_DENIED.rawValue, MOSQ_ERR_UNKNOWN.rawValue, MOSQ_ERR_EAI.rawValue, MOSQ_ERR_PROXY.rawValue:
            true
        default:
            false
        }
    }
}

extension MosquittoError {
    /// Text for a libmosquitto result code; for `MOSQ_ERR_ERRNO` and `MOSQ_ERR_EAI` reads the thread's `errno`,
    /// so call it right after the failing libmosquitto call, on the same thread.
    static func describe(_ rc: Int32) -> String {
        switch rc {
        case MosquittoResult.errno:
            String(cString: strerror(errno))
        case MosquittoResult.lookup:
            "cannot resolve host name: \(String(cString: gai_strerror(errno)))"
        default:
            String(cString: mosquitto_strerror(rc))
        }
    }

    /// Text for an MQTT 5 reason code, e.g. "not authorized (0x87)".
    static func describeReason(_ reasonCode: Int32) -> String {
        let text = String(cString: mosquitto_reason_string(reasonCode)).lowercased()
        return "\(text) (0x\(String(reasonCode, radix: 16, uppercase: false).leftPadded(to: 2)))"
    }

    /// Maps a libmosquitto result code returned by an API call to an error.
    init(rc: Int32, context: String) {
        let code: Code =
            switch rc {
            case MosquittoResult.noConnection: .notConnected
            case MosquittoResult.protocolError, MosquittoResult.malformedPacket: .protocolError
            case MosquittoResult.errno, MosquittoResult.lookup, MosquittoResult.connectionLost,
                MosquittoResult.tls, MosquittoResult.tlsHandshake:
                .unreachable
            default: .other
            }
        self.init(code: code, message: "\(context): \(Self.describe(rc))", reasonCode: rc)
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
