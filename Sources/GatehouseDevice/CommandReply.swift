public import GatehouseProtocol

/// What a command handler answers; ``DeviceClient`` turns it into the wire reply.
public enum CommandReply: Sendable, Equatable {
    /// Success: a `response` with status `ok` and this `data` is sent (acknowledged like any message).
    case ok(data: JSONValue = .null)
    /// Failure: a `response` with status `error` and `{"code":…,"message":…}` is sent.
    case error(code: String, message: String)
    /// Answer with a binary media frame carrying the command id (PROTOCOL 3.3); the gateway completes
    /// the command from it, so no text `response` is sent.
    case media(stream: String, contentType: String, payload: [UInt8])
}

/// Handles one command; called concurrently for concurrent commands, so it must be reentrant.
public typealias DeviceCommandHandler = @Sendable (DeviceCommand) async -> CommandReply
