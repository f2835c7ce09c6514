extension Topics {
    /// `<base>/<dev>/desired` (retained desired document, PROTOCOL.md 7).
    public func desired(_ device: String) -> String { "\(base)/\(device)/desired" }

    /// `<base>/<dev>/desired/set`: patches of the desired document.
    public func desiredSet(_ device: String) -> String { "\(base)/\(device)/desired/set" }

    /// `<base>/<dev>/delta` (retained: what the reported state does not match yet).
    public func delta(_ device: String) -> String { "\(base)/\(device)/delta" }

    /// `<base>/+/desired`.
    public var allDesired: String { "\(base)/+/desired" }

    /// `<base>/+/desired/set`.
    public var allDesiredSets: String { "\(base)/+/desired/set" }

    /// `<base>/+/delta`.
    public var allDelta: String { "\(base)/+/delta" }

    /// The command name whose answers go to `response/desired`; it is reserved, never a device command.
    public static let desiredCommand = "desired"
}
