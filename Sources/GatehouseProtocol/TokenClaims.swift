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
    /// `scope`: a device credential (the default) or a viewer's (PROTOCOL.md §8).
    public var scope: TokenScope
    /// `devices`: for viewer tokens, the device ids this viewer may watch; nil (absent) means every device.
    public var devices: [String]?

    /// Creates claims.
    public init(
        subject: String,
        kind: String? = nil,
        expiresAt: Int64? = nil,
        notBefore: Int64? = nil,
        issuedAt: Int64? = nil,
        tokenID: String? = nil,
        scope: TokenScope = .device,
        devices: [String]? = nil
    ) {
        self.subject = subject
        self.kind = kind
        self.expiresAt = expiresAt
        self.notBefore = notBefore
        self.issuedAt = issuedAt
        self.tokenID = tokenID
        self.scope = scope
        self.devices = devices
    }

    /// Whether these claims may watch `device`: a viewer token whose `devices` lists it (ids are
    /// case-sensitive), or that has no `devices` claim.
    public func mayView(_ device: String) -> Bool {
        scope == .view && (devices?.contains(device) ?? true)
    }
}

/// The `scope` claim: what a token is a credential for.
public enum TokenScope: String, Sendable, Equatable {
    /// A device connecting on `/v1/connect` (also when `scope` is absent).
    case device
    /// A viewer of live streams (`/v1/live/<dev>`); never a device.
    case view
}
