/// The JSON header of a binary media frame (PROTOCOL.md 3.3).
public struct MediaHeader: Sendable, Equatable {
    /// The content type used when the header names none.
    public static let defaultContentType = "application/octet-stream"

    /// The stream name (event-name pattern); the payload goes to `<base>/<dev>/media/<stream>`.
    public var stream: String
    /// The MIME type of the payload, set as the MQTT 5 Content Type.
    public var contentType: String
    /// The pending command this frame answers, if any.
    public var id: CommandID?

    /// Creates a header.
    public init(stream: String, contentType: String = MediaHeader.defaultContentType, id: CommandID? = nil) {
        self.stream = stream
        self.contentType = contentType
        self.id = id
    }
}
