/// The naming rules of the wire contract (PROTOCOL.md sections 1, 3.2 and 5).
///
/// Every name that becomes an MQTT topic level is checked here, so that nothing a device or
/// a requester writes can inject the wildcards `+` `#` or an extra level `/`.
public enum Identifiers {
    /// Whether `id` is a valid device id: `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$` and not `bridge`.
    public static func isValidDeviceID(_ id: String) -> Bool {
        isValidGatewayID(id) && id != "bridge"
    }

    /// Whether `id` is a valid gateway id: `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`.
    public static func isValidGatewayID(_ id: String) -> Bool {
        matches(id, maxLength: 64) { index, byte in
            isAlphanumeric(byte) || (index > 0 && (byte == dot || byte == underscore || byte == hyphen))
        }
    }

    /// Whether `name` is a valid event name or media stream name: `^[A-Za-z0-9_-]{1,64}$`.
    public static func isValidEventName(_ name: String) -> Bool {
        matches(name, maxLength: 64) { _, byte in
            isAlphanumeric(byte) || byte == underscore || byte == hyphen
        }
    }

    /// Whether `name` is a valid command name (the `<command>` topic level): `^[A-Za-z0-9._-]{1,64}$`.
    public static func isValidCommandName(_ name: String) -> Bool {
        matches(name, maxLength: 64) { _, byte in
            isAlphanumeric(byte) || byte == dot || byte == underscore || byte == hyphen
        }
    }

    /// Whether `id` is a valid command id in string form: `^[A-Za-z0-9._:-]{1,128}$`.
    public static func isValidCommandID(_ id: String) -> Bool {
        matches(id, maxLength: 128) { _, byte in
            isAlphanumeric(byte) || byte == dot || byte == underscore || byte == hyphen || byte == colon
        }
    }

    /// A Home Assistant object id: every character outside `[A-Za-z0-9_-]` replaced by `_`.
    ///
    /// "Character" means Unicode scalar, so `é` becomes a single `_`.
    public static func objectID(_ s: String) -> String {
        var result = String.UnicodeScalarView()
        for scalar in s.unicodeScalars {
            let allowed =
                scalar.isASCII
                && (isAlphanumeric(UInt8(scalar.value)) || scalar == "_" || scalar == "-")
            result.append(allowed ? scalar : "_")
        }
        return String(result)
    }

    private static let dot = UInt8(ascii: ".")
    private static let underscore = UInt8(ascii: "_")
    private static let hyphen = UInt8(ascii: "-")
    private static let colon = UInt8(ascii: ":")

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return false
        }
    }

    /// Whether `string` has 1...`maxLength` bytes, each allowed by `allowed(position, byte)`.
    ///
    /// All allowed bytes are ASCII, so byte length equals character length.
    private static func matches(_ string: String, maxLength: Int, allowed: (Int, UInt8) -> Bool) -> Bool {
        let utf8 = string.utf8
        guard !utf8.isEmpty, utf8.count <= maxLength else { return false }
        var position = 0
        for byte in utf8 {
            guard allowed(position, byte) else { return false }
            position += 1
        }
        return true
    }
}
