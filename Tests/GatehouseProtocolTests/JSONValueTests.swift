import Testing

@testable import GatehouseProtocol

@Suite("JSON values, numbers and serializer")
struct JSONValueTests {
    @Test("JSONNumber(text:) validates grammar and overflow")
    func numberText() {
        #expect(JSONNumber(text: "1.50")?.text == "1.50")
        #expect(JSONNumber(text: "1e308") != nil)
        #expect(JSONNumber(text: "1e999") == nil)
        #expect(JSONNumber(text: "-1e999") == nil)
        #expect(JSONNumber(text: "NaN") == nil)
        #expect(JSONNumber(text: "+1") == nil)
        #expect(JSONNumber(text: " 1") == nil)
        #expect(JSONNumber(text: "1 ") == nil)
        #expect(JSONNumber(text: "") == nil)
    }

    @Test("JSONNumber conversions")
    func numberConversions() {
        #expect(JSONNumber(UInt64.max).text == "18446744073709551615")
        #expect(JSONNumber(Int64.min).int64Value == .min)
        #expect(JSONNumber(text: "18446744073709551615")?.uint64Value == .max)
        #expect(JSONNumber(text: "18446744073709551616")?.uint64Value == nil)
        #expect(JSONNumber(text: "18446744073709551615")?.int64Value == nil)
        #expect(JSONNumber(text: "1.0")?.isInteger == false)
        #expect(JSONNumber(text: "1e2")?.isInteger == false)
        #expect(JSONNumber(text: "1e2")?.int64Value == nil)
        #expect(JSONNumber(text: "-7")?.int64Value == -7)
        #expect(JSONNumber(text: "-7")?.uint64Value == nil)
        #expect(JSONNumber(text: "21.5")?.doubleValue == 21.5)
        #expect(JSONNumber(Double.nan) == nil)
        #expect(JSONNumber(Double.infinity) == nil)
        #expect(JSONNumber(1.5)?.text == "1.5")
        #expect(JSONNumber(1e-5).flatMap { JSONNumber(text: $0.text) } != nil)
    }

    @Test("serializer escapes per RFC 8259 and writes non-ASCII as UTF-8")
    func serializeStrings() {
        let value: JSONValue = .string("a\"b\\c\n\t\r\u{8}\u{C}\u{1}\u{1F}/é😀\u{7F}")
        #expect(value.serializedString() == #""a\"b\\c\n\t\r\b\f\u0001\u001f/é😀\#u{7F}""#)
    }

    @Test("serializer output is compact and ordered")
    func serializeCompact() {
        let value: JSONValue = ["b": [1, 2.5, true, nil], "a": ["x": "y"], "c": [:], "d": []]
        #expect(value.serializedString() == #"{"b":[1,2.5,true,null],"a":{"x":"y"},"c":{},"d":[]}"#)
    }

    @Test("serialize then parse round-trips", arguments: [
        #"{"a":[1,{"b":null}],"c":"d\u0001\"e","n":-0.0e-0}"#,
        #"["😀","é",18446744073709551615,1.50,-0]"#,
    ])
    func roundTrip(_ text: String) throws {
        let value = try JSONValue(parsing: text)
        let again = try JSONValue(parsing: value.serialized())
        #expect(again == value)
        #expect(again.serializedString() == value.serializedString())
    }

    @Test("object equality ignores order; subscript set nil removes")
    func objectBasics() {
        var object: JSONObject = ["a": 1, "b": 2]
        #expect(object == ["b": 2, "a": 1])
        #expect(object != ["a": 1, "b": 3])
        #expect(object != ["a": 1])
        object["a"] = nil
        #expect(object.keys == ["b"])
        object["c"] = .null
        #expect(object["c"] == .null)
        #expect(object.count == 2)
        for index in 0..<40 { object["k\(index)"] = .number(index) }
        object["k3"] = nil
        #expect(object["k3"] == nil)
        #expect(object["k39"] == 39)
        #expect(object.count == 41)
    }

    @Test("value accessors")
    func accessors() {
        let value: JSONValue = ["s": "x", "n": 1, "b": false, "a": [1], "o": [:], "z": nil]
        #expect(value["s"]?.stringValue == "x")
        #expect(value["n"]?.numberValue?.int64Value == 1)
        #expect(value["b"]?.boolValue == false)
        #expect(value["a"]?.arrayValue == [1])
        #expect(value["o"]?.objectValue?.isEmpty == true)
        #expect(value["z"]?.isNull == true)
        #expect(value["missing"] == nil)
        #expect(JSONValue.string("x")["s"] == nil)
        #expect(JSONValue.number(UInt64.max).numberValue?.text == "18446744073709551615")
        #expect(JSONValue.number(Int64(-5)) == -5)
    }
}
