// A device maker builds messages from GatehouseProtocol's types (DeviceMessageBody, JSONValue,
// CommandID, DeviceHello, ...); importing GatehouseDevice alone is enough to use them.
@_exported import GatehouseProtocol
