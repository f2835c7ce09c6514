/// The JSON header of a binary media frame (PROTOCOL.md 3.3).
public struct MediaHeader: Sendable, Equatable {
    /// The content type used when the header names none.
    public static let defaultContentType = "application/octet-stream"
    /// The longest `content_type` taken (a MIME type with its parameters fits easily).
    public static let maxContentTypeBytes = 255

    /// Whether `contentType` is 1 to ``maxContentTypeBytes`` printable ASCII characters (a MIME type is).
    public static func isValidContentType(_ contentType: String) -> Bool {
        let utf8 = contentType.utf8
        return (1...maxContentTypeBytes).contains(utf8.count) && utf8.allSatisfy { (0x20..<0x7F).contains($0) }
    }

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
