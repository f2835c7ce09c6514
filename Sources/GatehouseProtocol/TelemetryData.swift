/// A `telemetry` message's `data`: a JSON object.
///
/// Read from a device, it is usually the device's own text, compact JSON already (``TelemetryScanner``): the gateway
/// publishes those bytes as they are (``TelemetryPayload``) and builds the object only when asked for it
/// (``object``: the status page, Home Assistant discovery). Equal when the objects are.
public struct TelemetryData: Sendable, Equatable, ExpressibleByDictionaryLiteral, CustomStringConvertible {
    private enum Form: Sendable {
        case object(JSONObject)
        /// The compact JSON text of an object: no whitespace, escape or repeated key.
        case compactJSON([UInt8])
    }

    private let form: Form

    /// Data made of an object.
    public init(_ object: JSONObject) {
        form = .object(object)
    }

    /// Data made of an object literal.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(JSONObject(elements))
    }

    /// Data kept as text that is the compact JSON of an object (the scanner vouches for it).
    init(compactJSON: [UInt8]) {
        form = .compactJSON(compactJSON)
    }

    /// The object (built from the text, when the data is text).
    public var object: JSONObject {
        switch form {
        case .object(let object):
            return object
        case .compactJSON(let text):
            guard case .object(let object)? = try? JSONValue(parsing: text) else {
                assertionFailure("telemetry data kept as text that is not a JSON object")
                return JSONObject()
            }
            return object
        }
    }

    /// Appends the compact JSON of the object: the text itself, when the data is text.
    public func serialize(into buffer: inout [UInt8]) {
        switch form {
        case .object(let object): object.serialize(into: &buffer)
        case .compactJSON(let text): buffer.append(contentsOf: text)
        }
    }

    /// The compact JSON of the object.
    public func serialized() -> [UInt8] {
        var buffer: [UInt8] = []
        serialize(into: &buffer)
        return buffer
    }

    /// Lends the compact JSON of the object: the text itself, when the data is text (nothing is copied).
    func withSerializedBytes<Result>(_ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        if case .compactJSON(let text) = form { return text.withUnsafeBytes(body) }
        return serialized().withUnsafeBytes(body)
    }

    /// The length of ``serialize(into:)``'s output when known without writing it: the text's.
    var knownByteCount: Int? {
        if case .compactJSON(let text) = form { text.count } else { nil }
    }

    public static func == (lhs: TelemetryData, rhs: TelemetryData) -> Bool {
        lhs.object == rhs.object
    }

    public var description: String { object.description }
}
