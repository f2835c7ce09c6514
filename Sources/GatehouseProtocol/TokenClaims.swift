/// The claims of a device token (PROTOCOL.md section 2). Times are Unix seconds.
public struct TokenClaims: Sendable, Equatable {
    /// `sub`: the device id.
    public var subject: String
    /// `kind`: the device kind, if the token names one.
    public var kind: String?
    /// `exp`: the token is expired when now ≥ this.
    public var expiresAt: Int64?
    /// `nbf`: the token is not valid before this.
    public var notBefore: Int64?
    /// `iat`: when the token was issued.
    public var issuedAt: Int64?
    /// `jti`: the token id, usable for revocation.
    public var tokenID: String?

    /// Creates claims.
    public init(
        subject: String,
        kind: String? = nil,
        expiresAt: Int64? = nil,
        notBefore: Int64? = nil,
        issuedAt: Int64? = nil,
        tokenID: String? = nil
    ) {
        self.subject = subject
        self.kind = kind
        self.expiresAt = expiresAt
        self.notBefore = notBefore
        self.issuedAt = issuedAt
        self.tokenID = tokenID
    }
}
