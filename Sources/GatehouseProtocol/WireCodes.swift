/// WebSocket close codes the gateway uses (PROTOCOL.md 3.4).
public enum CloseCode: UInt16, Sendable {
    /// Normal closure.
    case normal = 1000
    /// The gateway is shutting down.
    case goingAway = 1001
    /// A text frame was not valid UTF-8.
    case invalidUTF8 = 1007
    /// Policy: revoked token, kicked, or too many bad messages.
    case policyViolation = 1008
    /// A message exceeded `max_message_bytes` or `max_media_bytes`.
    case messageTooBig = 1009
    /// A newer connection for the same device took over.
    case replaced = 4000
    /// The device's token expired while it was connected.
    case tokenExpired = 4001
}

/// The `error.code` values of a `nack` (PROTOCOL.md 3.1, the full list).
public enum NackCode: String, Sendable {
    /// The message is malformed.
    case badMessage = "bad_message"
    /// A `response` names a command id that is unknown or already finished.
    case unknownID = "unknown_id"
    /// The device is sending faster than allowed.
    case rateLimited = "rate_limited"
    /// The spool has no room for the message.
    case spoolFull = "spool_full"
    /// The message could be neither published nor spooled.
    case brokerUnavailable = "broker_unavailable"
    /// The broker refused the publish (e.g. by ACL).
    case brokerRejected = "broker_rejected"
}

/// The `reason` of an `offline` availability message (PROTOCOL.md 4).
public enum OfflineReason: String, Sendable, CaseIterable {
    /// The device closed the connection.
    case disconnected
    /// The connection broke without a close.
    case connectionLost = "connection_lost"
    /// The device did not answer pings for twice the heartbeat.
    case heartbeatTimeout = "heartbeat_timeout"
    /// The device's token was revoked.
    case revoked
    /// The device's token expired while connected.
    case tokenExpired = "token_expired"
    /// An operator kicked the device.
    case kicked
    /// The device sent too many bad messages.
    case badMessages = "bad_messages"
    /// The device sent a message over the size limit.
    case messageTooBig = "message_too_big"
    /// The device sent invalid UTF-8.
    case invalidUTF8 = "invalid_utf8"
    /// The gateway is shutting down.
    case gatewayShutdown = "gateway_shutdown"
    /// The gateway restarted after a crash while holding the device.
    case gatewayRestart = "gateway_restart"
}

/// The `status` of a command response (PROTOCOL.md 5).
public enum CommandStatus: String, Sendable {
    /// The device answered with success.
    case ok
    /// The device answered with an error.
    case error
    /// The gateway refused the command before delivery.
    case rejected
    /// Delivered, but no answer within `timeout_ms`.
    case timeout
    /// The device is not connected and `ttl_ms` is 0.
    case offline
    /// The command waited `ttl_ms` and the device did not connect.
    case expired
    /// Interim: stored for an offline device.
    case queued

    /// Whether this status ends the command (every status but ``queued``).
    public var isFinal: Bool { self != .queued }
}

/// The `error.code` values the gateway puts in a command response (PROTOCOL.md 5).
public enum CommandErrorCode: String, Sendable {
    /// Status `timeout`.
    case timeout
    /// Status `offline`.
    case offline
    /// Status `expired`.
    case expired
    /// `rejected`: the request JSON is invalid.
    case badRequest = "bad_request"
    /// `rejected`: the device does not declare this command.
    case unknownCommand = "unknown_command"
    /// `rejected`: the params break the device's declared capabilities.
    case badParams = "bad_params"
    /// `rejected`: too many commands are already pending for the device.
    case queueFull = "queue_full"
    /// `rejected` desired patch: `version` was given and the desired document is at another version.
    case versionConflict = "version_conflict"
    /// `rejected` desired patch: the resulting document would exceed `limits.max_desired_bytes`.
    case tooBig = "too_big"
}

/// Well-known device kinds; kinds are free strings, these are the ones the gateway knows.
public enum DeviceKind {
    /// A thermostat (Home Assistant `climate`).
    public static let thermostat = "thermostat"
    /// A camera (Home Assistant `camera`, media frames).
    public static let camera = "camera"
    /// A sensor (Home Assistant `sensor` per numeric telemetry key).
    public static let sensor = "sensor"
}
