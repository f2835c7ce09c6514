import Testing

@testable import GatehouseProtocol

@Suite("JSON parser")
struct JSONParserTests {
    static let accepted: [String] = [
        "0", "-0", "1", "-1", "1.5", "1.50", "1e10", "1E+10", "1e-10", "0.0", "-0.0e0",
        "18446744073709551615", "99999999999999999999999999999999", "1e308", "-1e308", "1.7976931348623157e308",
        "1e-999", "true", "false", "null", "\"\"", "\"a\"", "[]", "{}", " \t\r\n[ 1 , 2 ] \n",
        #"{"a":[1,{"b":null}],"c":"d"}"#, #""\"\\\/\b\f\n\r\t""#, #""\u0000""#, #""\ud83d\ude00""#,
        "\"é日本😀\"", #"{"":0}"#, "[[],[[]]]",
    ]

    static let rejected: [String] = [
        "", " ", "NaN", "-NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e309", "+1", ".5", "1.", "1.e5",
        "01", "-01", "00", "-", "1e", "1e+", "0x10", "tru", "True", "nul", "nulll", "[1,]", "{\"a\":1,}", "[,]",
        "{,}", "[1 2]", "{\"a\" 1}", "{\"a\":}", "{1:2}", "{'a':1}", "'a'", "\"abc", "\"\t\"", "\"\n\"",
        "\"\u{1F}\"", #""\x""#, #""\u12""#, #""\u12G4""#, #""\ud800""#, #""\udc00""#, #""\ud800\u0041""#,
        #""\ud800x""#, #""\udbff\udbff""#, "[1]x", "{} {}", "[1] [2]", "\u{FEFF}[]", "[", "]", "{", "}",
        "[\"a\"", #"{"a""#, #"{"a":"#, "1 2", "\u{00A0}1",
    ]

    @Test("accepted documents", arguments: accepted)
    func accepts(_ text: String) throws {
        _ = try JSONValue(parsing: text)
    }

    @Test("rejected documents", arguments: rejected)
    func rejects(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: text) }
    }

    @Test("a 1309-digit integer overflows a double and is refused")
    func hugeInteger() {
        let digits = String(repeating: "9", count: 1309)
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: digits) }
        #expect((try? JSONValue(parsing: String(repeating: "9", count: 308))) != nil)
    }

    @Test("invalid UTF-8 in strings is refused", arguments: [
        [0x22, 0xFF, 0x22], [0x22, 0xC0, 0x80, 0x22], [0x22, 0xC3, 0x22], [0x22, 0xE0, 0x80, 0x80, 0x22],
        [0x22, 0xED, 0xA0, 0x80, 0x22], [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], [0x22, 0xF5, 0x80, 0x80, 0x80, 0x22],
        [0x22, 0x80, 0x22], [0x22, 0xE2, 0x82, 0x22], [0x5B, 0xC3, 0xA9, 0x5D],
    ] as [[UInt8]])
    func invalidUTF8(_ bytes: [UInt8]) {
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: bytes) }
    }

    @Test("valid multi-byte UTF-8 passes through")
    func validUTF8() throws {
        let bytes: [UInt8] = [0x22, 0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0xF0, 0x9F, 0x98, 0x80, 0xF4, 0x8F, 0xBF, 0xBF, 0x22]
        let value = try JSONValue(parsing: bytes)
        #expect(value == .string("é€😀\u{10FFFF}"))
    }

    @Test("escapes decode; surrogate pairs become one scalar")
    func escapes() throws {
        #expect(try JSONValue(parsing: #""\ud83d\ude00""#) == .string("😀"))
        #expect(try JSONValue(parsing: #""\uD83D\uDE00""#).stringValue?.utf8.elementsEqual([0xF0, 0x9F, 0x98, 0x80]) == true)
        #expect(try JSONValue(parsing: #""a\u00e9b\n\"\\\/""#) == .string("aéb\n\"\\/"))
        #expect(try JSONValue(parsing: #""\u20ac""#) == .string("€"))
        #expect(try JSONValue(parsing: #""x\u0000y""#) == .string("x\u{0}y"))
    }

    @Test("64 levels of nesting are accepted, 65 refused")
    func depth() throws {
        func nested(_ levels: Int) -> String {
            String(repeating: "[", count: levels) + String(repeating: "]", count: levels)
        }
        _ = try JSONValue(parsing: nested(64))
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: nested(65)) }
        let objects = String(repeating: #"{"a":"#, count: 65) + "1" + String(repeating: "}", count: 65)
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: objects) }
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: nested(3), maxDepth: 2) }
        _ = try JSONValue(parsing: "1", maxDepth: 0)
    }

    @Test("duplicate keys: the last one wins, in the first one's position")
    func duplicateKeys() throws {
        let value = try JSONValue(parsing: #"{"a":1,"b":2,"a":3}"#)
        #expect(value["a"] == 3)
        #expect(value.objectValue?.keys == ["a", "b"])
        #expect(value.serializedString() == #"{"a":3,"b":2}"#)
    }

    @Test("duplicate keys in a large object")
    func duplicateKeysLarge() throws {
        var text = "{"
        for index in 0..<100 { text += "\"k\(index)\":\(index)," }
        text += #""k5":"last"}"#
        let object = try #require(try JSONValue(parsing: text).objectValue)
        #expect(object.count == 100)
        #expect(object["k5"] == "last")
        #expect(object["k99"] == 99)
    }

    @Test("numbers round-trip as exact text", arguments: [
        "18446744073709551615", "1.50", "-0", "1e5", "1E-7", "0.000", "-12.3400e+10", "123456789012345678901234567890",
    ])
    func numberRoundTrip(_ text: String) throws {
        let value = try JSONValue(parsing: "[\(text)]")
        #expect(value.serializedString() == "[\(text)]")
        #expect(value.arrayValue?.first?.numberValue?.text == text)
    }

    @Test("parse error reports the offset")
    func errorOffset() {
        do {
            _ = try JSONValue(parsing: "[1,,2]")
            Issue.record("expected an error")
        } catch {
            #expect(error.offset == 3)
        }
    }

    @Test("parsing from a buffer pointer and from bytes agree")
    func bufferPointer() throws {
        let bytes = Array(#"{"x":[true,false,null]}"#.utf8)
        let fromPointer = try bytes.withUnsafeBytes { try JSONValue(parsing: $0) }
        #expect(fromPointer == (try JSONValue(parsing: bytes)))
        #expect(fromPointer == ["x": [true, false, nil]])
    }
}
