import Testing

@testable import GatehouseProtocol

@Suite("Device tokens (JWT HS256)")
struct DeviceTokenTests {
    static let key = FleetKey(secret: Array("fleet-secret".utf8))
    static let now: Int64 = 1_763_731_200

    /// Signs arbitrary header and claims JSON, for tokens `issue` would never make.
    static func forge(header: String, claims: String, secret: [UInt8] = key.secret) -> String {
        let input = Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(claims.utf8))
        let signature = DeviceToken.signature(for: Array(input.utf8), key: FleetKey(secret: secret))
        return input + "." + Base64URL.encode(signature)
    }

    func code(_ token: String, keys: [FleetKey] = [key], now: Int64 = now) -> TokenError.Code? {
        do {
            _ = try DeviceToken.verify(token, keys: keys, now: now)
            return nil
        } catch {
            return error.code
        }
    }

    @Test("issue then verify returns the claims")
    func roundTrip() throws {
        let claims = TokenClaims(subject: "thermo-1", kind: "thermostat", expiresAt: Self.now + 60, notBefore: Self.now, issuedAt: Self.now - 5, tokenID: "t-1")
        let token = DeviceToken.issue(claims, key: Self.key)
        #expect(try DeviceToken.verify(token, keys: [Self.key], now: Self.now) == claims)
        #expect(!token.contains("="))
        let minimal = TokenClaims(subject: "d")
        #expect(try DeviceToken.verify(DeviceToken.issue(minimal, key: Self.key), keys: [Self.key], now: Self.now) == minimal)
    }

    @Test("the issued header is alg HS256 typ JWT, plus kid")
    func header() throws {
        let plain = DeviceToken.issue(TokenClaims(subject: "d"), key: Self.key)
        let header = try #require(Base64URL.decode(plain.split(separator: ".")[0]))
        #expect(String(decoding: header, as: UTF8.self) == #"{"alg":"HS256","typ":"JWT"}"#)
        let named = DeviceToken.issue(TokenClaims(subject: "d"), key: FleetKey(id: "k2", secret: [1]))
        let namedHeader = try #require(Base64URL.decode(named.split(separator: ".")[0]))
        #expect(String(decoding: namedHeader, as: UTF8.self) == #"{"alg":"HS256","typ":"JWT","kid":"k2"}"#)
    }

    @Test("a token made by another library verifies (jwt.io sample)")
    func interoperability() throws {
        let token =
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
        let claims = try DeviceToken.verify(token, keys: [FleetKey(secret: Array("your-256-bit-secret".utf8))], now: Self.now)
        #expect(claims == TokenClaims(subject: "1234567890", issuedAt: 1_516_239_022))
    }

    @Test("algorithms other than HS256 are refused", arguments: [
        #"{"alg":"none","typ":"JWT"}"#, #"{"alg":"HS384"}"#, #"{"alg":"RS256"}"#, #"{"alg":"hs256"}"#,
        #"{"typ":"JWT"}"#, #"{"alg":null}"#, #"{"alg":["HS256"]}"#,
    ])
    func algorithms(_ header: String) {
        #expect(code(Self.forge(header: header, claims: #"{"sub":"d"}"#)) == .unsupportedAlgorithm)
    }

    @Test("alg none with an empty signature is refused")
    func algNoneUnsigned() {
        let token = Base64URL.encode(Array(#"{"alg":"none"}"#.utf8)) + "." + Base64URL.encode(Array(#"{"sub":"d"}"#.utf8)) + "."
        #expect(code(token) == .unsupportedAlgorithm)
    }

    @Test("tampered tokens are refused")
    func tampered() {
        let token = DeviceToken.issue(TokenClaims(subject: "thermo-1"), key: Self.key)
        let parts = token.split(separator: ".").map(String.init)
        var signature = Array(parts[2].utf8)
        signature[0] = signature[0] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        #expect(code(parts[0] + "." + parts[1] + "." + String(decoding: signature, as: UTF8.self)) == .badSignature)
        let otherClaims = Base64URL.encode(Array(#"{"sub":"thermo-2"}"#.utf8))
        #expect(code(parts[0] + "." + otherClaims + "." + parts[2]) == .badSignature)
        #expect(code(parts[0] + "." + parts[1] + ".") == .badSignature)
        #expect(code(token, keys: [FleetKey(secret: Array("other".utf8))]) == .badSignature)
    }

    @Test("malformed tokens", arguments: [
        "", "abc", "a.b", "a.b.c.d", "!!.e30.x", "e30.e30.@@", "bnVsbA.e30.x",
    ])
    func malformed(_ token: String) {
        #expect(code(token) == .malformed || code(token) == .unsupportedAlgorithm)
        #expect(code(token) != nil)
    }

    @Test("exp: expired when now >= exp, no leeway")
    func expiry() {
        let token = DeviceToken.issue(TokenClaims(subject: "d", expiresAt: Self.now), key: Self.key)
        #expect(code(token, now: Self.now) == .expired)
        #expect(code(token, now: Self.now + 1) == .expired)
        #expect(code(token, now: Self.now - 1) == nil)
    }

    @Test("nbf: invalid while now < nbf")
    func notBefore() {
        let token = DeviceToken.issue(TokenClaims(subject: "d", notBefore: Self.now + 10), key: Self.key)
        #expect(code(token, now: Self.now) == .notYetValid)
        #expect(code(token, now: Self.now + 9) == .notYetValid)
        #expect(code(token, now: Self.now + 10) == nil)
    }

    @Test("fractional times compare as seconds")
    func fractionalTimes() {
        let token = Self.forge(header: #"{"alg":"HS256"}"#, claims: #"{"sub":"d","exp":100.5,"nbf":99.5}"#)
        #expect(code(token, now: 99) == .notYetValid)
        #expect(code(token, now: 100) == nil)
        #expect(code(token, now: 101) == .expired)
        #expect((try? DeviceToken.verify(token, keys: [Self.key], now: 100))?.expiresAt == 100)
    }

    @Test("non-numeric times and non-string kind/jti are malformed", arguments: [
        #"{"sub":"d","exp":"2030"}"#, #"{"sub":"d","nbf":true}"#, #"{"sub":"d","iat":null}"#,
        #"{"sub":"d","kind":1}"#, #"{"sub":"d","jti":5}"#,
    ])
    func malformedClaims(_ claims: String) {
        #expect(code(Self.forge(header: #"{"alg":"HS256"}"#, claims: claims)) == .malformed)
    }

    @Test("sub must be a valid device id", arguments: [
        #"{"sub":"bridge"}"#, #"{"sub":"a/b"}"#, #"{"sub":"+"}"#, #"{"sub":""}"#, #"{"sub":5}"#, #"{}"#,
        #"{"sub":"\u0000"}"#,
    ])
    func invalidSubject(_ claims: String) {
        #expect(code(Self.forge(header: #"{"alg":"HS256"}"#, claims: claims)) == .invalidSubject)
    }

    @Test("kid selects the key; unknown kid is refused; without kid every key is tried")
    func keySelection() {
        let first = FleetKey(id: "k1", secret: Array("one".utf8))
        let second = FleetKey(id: "k2", secret: Array("two".utf8))
        let byFirst = DeviceToken.issue(TokenClaims(subject: "d"), key: first)
        #expect(code(byFirst, keys: [second, first]) == nil)
        #expect(code(byFirst, keys: [second]) == .unknownKey)
        // A kid naming the wrong key's id must not fall back to the other keys.
        let mislabelled = Self.forge(header: #"{"alg":"HS256","kid":"k2"}"#, claims: #"{"sub":"d"}"#, secret: first.secret)
        #expect(code(mislabelled, keys: [first, second]) == .badSignature)
        let unnamed = Self.forge(header: #"{"alg":"HS256"}"#, claims: #"{"sub":"d"}"#, secret: second.secret)
        #expect(code(unnamed, keys: [first, second]) == nil)
        #expect(code(unnamed, keys: []) == .unknownKey)
        #expect(code(Self.forge(header: #"{"alg":"HS256","kid":5}"#, claims: #"{"sub":"d"}"#)) == .malformed)
    }

    @Test("a key file's one trailing newline is not part of the key")
    func keyFile() {
        #expect(FleetKey(fileContents: Array("secret\n".utf8)).secret == Array("secret".utf8))
        #expect(FleetKey(fileContents: Array("secret\n\n".utf8)).secret == Array("secret\n".utf8))
        #expect(FleetKey(fileContents: Array("secret\r\n".utf8)).secret == Array("secret\r".utf8))
        #expect(FleetKey(fileContents: Array("secret".utf8)).secret == Array("secret".utf8))
        let token = DeviceToken.issue(TokenClaims(subject: "d"), key: FleetKey(secret: Array("secret".utf8)))
        #expect(code(token, keys: [FleetKey(fileContents: Array("secret\n".utf8))]) == nil)
    }

    @Test("base64url", arguments: [
        ("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"), ("fooba", "Zm9vYmE"), ("foobar", "Zm9vYmFy"),
    ])
    func base64url(_ plain: String, _ encoded: String) {
        #expect(Base64URL.encode(Array(plain.utf8)) == encoded)
        #expect(Base64URL.decode(encoded) == Array(plain.utf8))
    }

    @Test("base64url uses - and _ and refuses padding and other bytes")
    func base64urlAlphabet() {
        #expect(Base64URL.encode([0xFB, 0xFF]) == "-_8")
        #expect(Base64URL.decode("-_8") == [0xFB, 0xFF])
        #expect(Base64URL.decode("Zg==") == nil)
        #expect(Base64URL.decode("+/8") == nil)
        #expect(Base64URL.decode("Z") == nil)
    }
}
