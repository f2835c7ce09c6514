/// The content of a device's `hello` message.
public struct DeviceHello: Sendable, Equatable {
    /// The device kind (`thermostat`, `camera`, `sensor`, or any other word).
    public var kind: String?
    /// The device model.
    public var model: String?
    /// The firmware version.
    public var firmware: String?
    /// What the device accepts; see ``Capabilities``.
    public var capabilities: JSONObject?

    /// Creates a hello.
    public init(kind: String? = nil, model: String? = nil, firmware: String? = nil, capabilities: JSONObject? = nil) {
        self.kind = kind
        self.model = model
        self.firmware = firmware
        self.capabilities = capabilities
    }
}
