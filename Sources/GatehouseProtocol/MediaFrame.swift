/// Binary media frames: `[2-byte big-endian header length N][N bytes of JSON header][payload]`.
public struct MediaFrame: Sendable {
    /// Reads the header of a binary frame.
    ///
    /// Fails when the frame is shorter than 2 bytes, `N` exceeds the bytes that follow, the header
    /// is not a JSON object, `stream` is missing or not a valid event name, `content_type` is not
    /// a string, or `id` is not a valid command id.
    ///
    /// - Returns: the header and the offset of the first payload byte (`2 + N`).
    public static func parseHeader(
        _ bytes: UnsafeRawBufferPointer
    ) -> Result<(header: MediaHeader, payloadOffset: Int), BadMessageError> {
        guard bytes.count >= 2 else {
            return .failure(BadMessageError(message: "binary frame shorter than its 2-byte header length"))
        }
        let length = Int(bytes[0]) << 8 | Int(bytes[1])
        guard length <= bytes.count - 2 else {
            return .failure(BadMessageError(message: "media header length \(length) exceeds the frame"))
        }
        let value: JSONValue
        do {
            value = try JSONValue(parsing: UnsafeRawBufferPointer(rebasing: bytes[2..<(2 + length)]))
        } catch {
            return .failure(BadMessageError(message: "invalid media header JSON: \(error)"))
        }
        guard case .object(let object) = value else {
            return .failure(BadMessageError(message: "media header must be a JSON object"))
        }
        do {
            return .success((try header(from: object), 2 + length))
        } catch {
            return .failure(BadMessageError(message: error.message))
        }
    }

    /// Reads the header of a binary frame; see ``parseHeader(_:)-(UnsafeRawBufferPointer)``.
    public static func parseHeader(
        _ bytes: [UInt8]
    ) -> Result<(header: MediaHeader, payloadOffset: Int), BadMessageError> {
        bytes.withUnsafeBytes { parseHeader($0) }
    }

    /// Builds a binary frame; `content_type` is always written, `id` when present.
    public static func encode(header: MediaHeader, payload: [UInt8]) -> [UInt8] {
        var object = JSONObject()
        object["stream"] = .string(header.stream)
        object["content_type"] = .string(header.contentType)
        if let id = header.id { object["id"] = id.json }
        let json = object.serialized()
        precondition(json.count <= Int(UInt16.max), "media header longer than 65535 bytes")
        var frame: [UInt8] = []
        frame.reserveCapacity(2 + json.count + payload.count)
        frame.append(UInt8(json.count >> 8))
        frame.append(UInt8(json.count & 0xFF))
        frame.append(contentsOf: json)
        frame.append(contentsOf: payload)
        return frame
    }

    private static func header(from object: JSONObject) throws(FieldError) -> MediaHeader {
        let stream = try object.requiredString("stream")
        guard Identifiers.isValidEventName(stream) else {
            throw FieldError(message: "'stream' must match [A-Za-z0-9_-]{1,64}")
        }
        let contentType = try object.optionalString("content_type") ?? MediaHeader.defaultContentType
        // It becomes the MQTT 5 Content Type property, which libmosquitto refuses with a control character in it:
        // the frame would go out without it.
        guard MediaHeader.isValidContentType(contentType) else {
            throw FieldError(message: "'content_type' must be 1 to \(MediaHeader.maxContentTypeBytes) printable ASCII characters")
        }
        var id: CommandID?
        if let rawID = object["id"], !rawID.isNull {
            guard let valid = CommandID(json: rawID) else {
                throw FieldError(message: "'id' must be a non-negative integer or a string matching [A-Za-z0-9._:-]{1,128}")
            }
            id = valid
        }
        return MediaHeader(stream: stream, contentType: contentType, id: id)
    }
}
