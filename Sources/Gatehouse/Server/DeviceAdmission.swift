import Logging
import Mosquitto
import Foundation
import GatehouseProtocol
import NIOCore
import NIOHTTP1
import NIOSSL
import Synchronization

/// The answer to a WebSocket upgrade request, decided before any upgrade happens so that a refusal
/// can carry its own HTTP status (401, 404, 400, 503) and a JSON body.
enum Admission: Sendable {
    case accept(claims: TokenClaims, responseHeaders: HTTPHeaders, compressed: Bool)
    case refuse(Refusal)
}

/// An HTTP refusal of an upgrade request.
struct Refusal: Sendable {
    var status: HTTPResponseStatus
    var code: String
    var message: String
    /// Seconds for a `Retry-After` header (refusals that pass with time).
    var retryAfter: Int? = nil

    /// `{"error":{"code":"unauthorized","message":"..."}}`
    var body: [UInt8] {
        let error = JSONObject([("code", .string(code)), ("message", .string(message))])
        return JSONValue.object(JSONObject([("error", .object(error))])).serialized()
    }
}

/// Who may connect: decides each upgrade request before any upgrade happens (path, subprotocol, token or
/// client certificate, revocation, capacity, the connect rates: the device's own, then the gateway's).
///
/// Owns the connect-rate budgets (`ConnectBudget`). Reads `CredentialStore`, `SettingsStore` (limits), `DeviceDirectory`
/// (capacity) and `Readiness`.
final class DeviceAdmission: Sendable {
    static let connectPath = "/v1/connect"
    static let subprotocol = "gatehouse.v1"

    private let credentials: CredentialStore
    private let settings: SettingsStore
    private let directory: DeviceDirectory
    private let readiness: Readiness
    private let compression: Bool
    private let metrics: GatewayMetrics
    /// New connections per device and for the whole gateway.
    private let connectBudget: Mutex<ConnectBudget>

    init(credentials: CredentialStore, settings: SettingsStore, directory: DeviceDirectory, readiness: Readiness,
         compression: Bool, metrics: GatewayMetrics) {
        self.credentials = credentials
        self.settings = settings
        self.directory = directory
        self.readiness = readiness
        self.compression = compression
        self.metrics = metrics
        self.connectBudget = Mutex(ConnectBudget(nowNanos: NIODeadline.now().uptimeNanoseconds))
    }

    /// Whether credentials admitted earlier are revoked by now.
    func isRevoked(_ claims: TokenClaims) -> Bool {
        credentials.isRevoked(claims)
    }

    /// Decides an upgrade request: path, subprotocol, then the token (header wins over query) or, without a
    /// token, the device id of a verified client certificate; then capacity and the connection rate.
    func admit(_ head: HTTPRequestHead, clientCertificate: NIOSSLCertificate? = nil) -> Admission {
        let (path, query) = splitURI(head.uri)
        guard path == Self.connectPath else {
            return .refuse(Refusal(status: .notFound, code: "not_found", message: "no such endpoint \(path); devices connect to \(Self.connectPath)"))
        }
        var headers = HTTPHeaders()
        let offered = head.headers[canonicalForm: "Sec-WebSocket-Protocol"].map(String.init)
        if !offered.isEmpty {
            guard offered.contains(Self.subprotocol) else {
                return .refuse(Refusal(status: .badRequest, code: "bad_subprotocol", message: "offer the subprotocol \(Self.subprotocol)"))
            }
            headers.add(name: "Sec-WebSocket-Protocol", value: Self.subprotocol)
        }
        guard readiness.isListening else {
            return .refuse(Refusal(status: .serviceUnavailable, code: "unavailable", message: "the gateway is not listening yet; retry later", retryAfter: 5))
        }
        let token = bearerToken(in: head.headers.first(name: "Authorization")) ?? queryToken(query)
        let certified = token == nil ? clientCertificate.flatMap(DeviceTLS.deviceID) : nil
        guard token != nil || certified != nil else {
            let message = clientCertificate == nil
                ? "missing token: send Authorization: Bearer <jwt> or ?token=<jwt>"
                : "the client certificate names no valid device id (CN or SAN), and there is no token"
            return .refuse(Refusal(status: .unauthorized, code: "unauthorized", message: message))
        }
        var compressed = false
        if compression, let answer = PerMessageDeflate.negotiate(head.headers) {
            headers.add(name: "Sec-WebSocket-Extensions", value: answer)
            compressed = true
        }
        let claims: TokenClaims
        if let token {
            do {
                claims = try credentials.authenticate(token)
            } catch {
                return .refuse(Refusal(status: .unauthorized, code: "unauthorized", message: error.message))
            }
            guard claims.scope == .device else {
                return .refuse(Refusal(status: .unauthorized, code: "unauthorized", message: "a viewer token (scope view) cannot connect as a device"))
            }
        } else {
            claims = TokenClaims(subject: certified!, kind: nil, expiresAt: nil, issuedAt: nil, tokenID: nil)
            guard !credentials.isRevoked(claims) else {
                return .refuse(Refusal(status: .unauthorized, code: "unauthorized", message: "device revoked"))
            }
        }
        // Capacity is checked once the device is known: unauthenticated clients cannot use it up, and a device
        // replacing its own stale session is never refused for it.
        let limits = settings.now.limits
        guard directory.session(claims.subject) != nil || directory.count < limits.maxConnections else {
            metrics.limitHit("max_connections")
            return .refuse(Refusal(status: .serviceUnavailable, code: "unavailable", message: "the gateway takes no more connections now; retry later", retryAfter: 5))
        }
        let budget = connectBudget.withLock {
            $0.take(device: claims.subject, perDevicePerMinute: limits.maxConnectsPerDevicePerMinute,
                    gatewayPerSecond: limits.maxConnectsPerSecond, nowNanos: NIODeadline.now().uptimeNanoseconds)
        }
        switch budget {
        case .allowed:
            return .accept(claims: claims, responseHeaders: headers, compressed: compressed)
        case .deviceOverBudget(let seconds):
            metrics.limitHit("connects_per_device")
            let message = "device \(claims.subject) connects too often (more than \(limits.maxConnectsPerDevicePerMinute) times a minute); retry in \(seconds) s"
            return .refuse(Refusal(status: .tooManyRequests, code: "rate_limited", message: message, retryAfter: seconds))
        case .gatewayOverBudget:
            metrics.limitHit("connects_per_s")
            return .refuse(Refusal(status: .tooManyRequests, code: "rate_limited", message: "too many new connections per second; retry shortly", retryAfter: 1))
        }
    }

    private func splitURI(_ uri: String) -> (path: String, query: Substring?) {
        guard let mark = uri.firstIndex(of: "?") else { return (uri, nil) }
        return (String(uri[..<mark]), uri[uri.index(after: mark)...])
    }

    private func queryToken(_ query: Substring?) -> String? {
        guard let query else { return nil }
        for pair in query.split(separator: "&") where pair.hasPrefix("token=") {
            return String(pair.dropFirst(6)).removingPercentEncoding
        }
        return nil
    }
}
