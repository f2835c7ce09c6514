import Crypto

/// Device tokens: JWTs (RFC 7519) signed with HS256 (PROTOCOL.md section 2).
public enum DeviceToken {
    /// Signs `claims` with `key`.
    ///
    /// The header is `{"alg":"HS256","typ":"JWT"}`, plus `"kid"` when the key has an id; the
    /// claims are written in the order `sub`, `kind`, `exp`, `nbf`, `iat`, `jti`, `scope`, `devices`,
    /// leaving out the absent ones (and `scope` when it is `device`, the default). Parts are base64url without padding.
    public static func issue(_ claims: TokenClaims, key: FleetKey) -> String {
        var header: JSONObject = ["alg": "HS256", "typ": "JWT"]
        if let id = key.id { header["kid"] = .string(id) }
        var payload: JSONObject = ["sub": .string(claims.subject)]
        if let kind = claims.kind { payload["kind"] = .string(kind) }
        if let exp = claims.expiresAt { payload["exp"] = .number(exp) }
        if let nbf = claims.notBefore { payload["nbf"] = .number(nbf) }
        if let iat = claims.issuedAt { payload["iat"] = .number(iat) }
        if let jti = claims.tokenID { payload["jti"] = .string(jti) }
        if claims.scope != .device { payload["scope"] = .string(claims.scope.rawValue) }
        if let devices = claims.devices { payload["devices"] = .array(devices.map(JSONValue.string)) }
        let signingInput = Base64URL.encode(header.serialized()) + "." + Base64URL.encode(payload.serialized())
        return signingInput + "." + Base64URL.encode(signature(for: Array(signingInput.utf8), key: key))
    }

    /// The HMAC-SHA256 of `signingInput` (`<header>.<claims>`) under `key`.
    static func signature(for signingInput: [UInt8], key: FleetKey) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: signingInput, using: SymmetricKey(data: key.secret)))
    }

    /// Verifies a token and returns its claims.
    ///
    /// Only `alg` `HS256` is accepted. When the header has a `kid`, the key with that id is used
    /// (``TokenError/Code/unknownKey`` if there is none); otherwise each key is tried. Signatures
    /// are compared in constant time. `exp`, `nbf` and `iat` must be numbers (integers or
    /// fractions, compared as seconds, no leeway): expired when `now >= exp`, not yet valid when
    /// `now < nbf`. `sub` must be a valid device id. `scope`, when present, must be `device` or `view`, and
    /// `devices`, when present, a list of strings (``TokenError/Code/malformed`` otherwise).
    ///
    /// - Parameters:
    ///   - token: the compact JWT.
    ///   - keys: the configured fleet keys.
    ///   - now: the current time in Unix seconds.
    public static func verify(_ token: String, keys: [FleetKey], now: Int64) throws(TokenError) -> TokenClaims {
        // Split as bytes: `String.split` walks grapheme clusters, and cost a connection several microseconds.
        let parts = token.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false).map(Substring.init)
        guard parts.count == 3 else { throw TokenError(code: .malformed, message: "token is not a JWT (three dot-separated parts)") }
        let header = try decodeObject(parts[0], what: "header")
        guard case .string(let alg)? = header["alg"], alg == "HS256" else {
            throw TokenError(code: .unsupportedAlgorithm, message: "token algorithm must be HS256")
        }
        if header["crit"] != nil {
            throw TokenError(code: .malformed, message: "token header has unsupported critical extensions")
        }
        guard let signature = Base64URL.decode(parts[2]) else {
            throw TokenError(code: .malformed, message: "token signature is not base64url")
        }
        let candidates: [FleetKey]
        switch header["kid"] {
        case nil:
            candidates = keys
        case .string(let kid)?:
            candidates = keys.filter { $0.id == kid }
            guard !candidates.isEmpty else { throw TokenError(code: .unknownKey, message: "token key id '\(kid)' is not configured") }
        default:
            throw TokenError(code: .malformed, message: "token 'kid' must be a string")
        }
        guard !candidates.isEmpty else { throw TokenError(code: .unknownKey, message: "no token key is configured") }
        let signingInput = Array(token.utf8.prefix(parts[0].utf8.count + 1 + parts[1].utf8.count))
        let valid = candidates.contains { key in
            HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: signingInput, using: SymmetricKey(data: key.secret))
        }
        guard valid else { throw TokenError(code: .badSignature, message: "token signature is invalid") }
        let claims = try readClaims(try decodeObject(parts[1], what: "claims"))
        try checkTimes(claims, now: now)
        return claims.claims
    }

    /// The claims with the exact times kept for comparison (they may be fractional).
    private struct ReadClaims {
        var claims: TokenClaims
        var exp: JSONNumber?
        var nbf: JSONNumber?
    }

    private static func readClaims(_ object: JSONObject) throws(TokenError) -> ReadClaims {
        guard case .string(let subject)? = object["sub"] else {
            throw TokenError(code: .invalidSubject, message: "token 'sub' must be a device id")
        }
        guard Identifiers.isValidDeviceID(subject) else {
            throw TokenError(code: .invalidSubject, message: "token 'sub' '\(subject)' is not a valid device id")
        }
        let exp = try number(object, "exp")
        let nbf = try number(object, "nbf")
        let iat = try number(object, "iat")
        let claims = TokenClaims(
            subject: subject,
            kind: try string(object, "kind"),
            expiresAt: exp.map(seconds),
            notBefore: nbf.map(seconds),
            issuedAt: iat.map(seconds),
            tokenID: try string(object, "jti"),
            scope: try scope(object),
            devices: try devices(object)
        )
        return ReadClaims(claims: claims, exp: exp, nbf: nbf)
    }

    private static func scope(_ object: JSONObject) throws(TokenError) -> TokenScope {
        guard let text = try string(object, "scope") else { return .device }
        guard let scope = TokenScope(rawValue: text) else {
            throw TokenError(code: .malformed, message: "token 'scope' must be device or view, got '\(text)'")
        }
        return scope
    }

    private static func devices(_ object: JSONObject) throws(TokenError) -> [String]? {
        guard let value = object["devices"] else { return nil }
        guard let list = value.arrayValue else { throw TokenError(code: .malformed, message: "token 'devices' must be a list of device ids") }
        var devices: [String] = []
        for item in list {
            guard let id = item.stringValue else { throw TokenError(code: .malformed, message: "token 'devices' must be a list of strings") }
            devices.append(id)
        }
        return devices
    }

    private static func checkTimes(_ read: ReadClaims, now: Int64) throws(TokenError) {
        if let exp = read.exp, !isBefore(now, exp) {
            throw TokenError(code: .expired, message: "token expired")
        }
        if let nbf = read.nbf, isBefore(now, nbf) {
            throw TokenError(code: .notYetValid, message: "token is not valid yet")
        }
    }

    /// Whether `now < value`, exactly for integers and via `Double` for fractions.
    private static func isBefore(_ now: Int64, _ value: JSONNumber) -> Bool {
        if let integer = value.int64Value { return now < integer }
        return Double(now) < value.doubleValue
    }

    /// Whole seconds, rounded down and clamped to `Int64`.
    private static func seconds(_ value: JSONNumber) -> Int64 {
        if let integer = value.int64Value { return integer }
        let double = value.doubleValue.rounded(.down)
        if double >= 9.2e18 { return .max }
        if double <= -9.2e18 { return .min }
        return Int64(double)
    }

    private static func number(_ object: JSONObject, _ key: String) throws(TokenError) -> JSONNumber? {
        switch object[key] {
        case nil: return nil
        case .number(let number)?: return number
        default: throw TokenError(code: .malformed, message: "token '\(key)' must be a number")
        }
    }

    private static func string(_ object: JSONObject, _ key: String) throws(TokenError) -> String? {
        switch object[key] {
        case nil: return nil
        case .string(let string)?: return string
        default: throw TokenError(code: .malformed, message: "token '\(key)' must be a string")
        }
    }

    private static func decodeObject(_ part: Substring, what: String) throws(TokenError) -> JSONObject {
        guard let bytes = Base64URL.decode(part), case .object(let object)? = try? JSONValue(parsing: bytes) else {
            throw TokenError(code: .malformed, message: "token \(what) is not base64url JSON")
        }
        return object
    }
}
