import CMosquitto

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension MosquittoError {
    /// Text for a libmosquitto result code; for `MOSQ_ERR_ERRNO` and `MOSQ_ERR_EAI` reads the thread's `errno`,
    /// so call it right after the failing libmosquitto call, on the same thread.
    static func describe(_ rc: MosquittoResultCode) -> String {
        switch rc {
        case .errno:
            String(cString: strerror(errno))
        case .lookup:
            "cannot resolve host name: \(String(cString: gai_strerror(errno)))"
        default:
            String(cString: mosquitto_strerror(rc.rawValue))
        }
    }

    /// Maps a libmosquitto result code returned by an API call to an error.
    init(rc: MosquittoResultCode, context: String) {
        let code: Code =
            switch rc {
            case .noConnection: .notConnected
            case .protocol, .malformedPacket: .protocolError
            case .errno, .lookup, .connectionLost, .tls, .tlsHandshake: .unreachable
            default: .other
            }
        self.init(code: code, message: "\(context): \(Self.describe(rc))", resultCode: rc)
    }
}
