public import GatehouseProtocol

/// A command the gateway delivered to this device.
public struct DeviceCommand: Sendable, Equatable {
    /// The command id; the response carries it back with its original JSON type.
    public var id: CommandID
    /// The command name, e.g. `set_setpoint`.
    public var name: String
    /// The command parameters (already checked against the device's declared capabilities).
    public var params: JSONObject
    /// Unix milliseconds after which the gateway stops waiting for an answer.
    public var deadline: Int64

    /// Creates a command.
    public init(id: CommandID, name: String, params: JSONObject, deadline: Int64) {
        self.id = id
        self.name = name
        self.params = params
        self.deadline = deadline
    }
}
