import Testing

@testable import GatehouseProtocol

@Suite("Command ids")
struct CommandIDTests {
    @Test("accepted ids keep their JSON type")
    func accepted() throws {
        let number = try #require(CommandID(json: 42))
        #expect(number.text == "42")
        #expect(number.json == 42)
        let big = try #require(CommandID(json: .number(JSONNumber(text: "123456789012345678901234567890")!)))
        #expect(big.text == "123456789012345678901234567890")
        let string = try #require(CommandID(json: "c-81f2"))
        #expect(string.text == "c-81f2")
        #expect(string.json == "c-81f2")
        #expect(string.description == "c-81f2")
        #expect(CommandID(json: "42") != number)
        #expect(CommandID(json: "42")?.text == number.text)
        // An integer is an integer, negative too (PROTOCOL 5); `-5` is a topic level like any other.
        let negative = try #require(CommandID(json: .number(JSONNumber(text: "-5")!)))
        #expect(negative.text == "-5" && negative.json == .number(JSONNumber(text: "-5")!))
        #expect(CommandID(json: "-5") != negative)
    }

    @Test("refused ids", arguments: [
        JSONValue.number(JSONNumber(text: "-1.5")!), 1.5, .number(JSONNumber(text: "1e2")!), .number(JSONNumber(text: "-1e2")!), "", "a/b", "a b", "+",
        "#", true, nil, [1], [:], .number(JSONNumber(text: "-" + String(repeating: "1", count: 128))!),
        .string(String(repeating: "x", count: 129)), .number(JSONNumber(text: String(repeating: "1", count: 129))!),
    ])
    func refused(_ json: JSONValue) {
        #expect(CommandID(json: json) == nil)
    }

    @Test("generated ids are strings")
    func generated() {
        let id = CommandID(generated: "gw-1:17")
        #expect(id.json == "gw-1:17")
        #expect(Set([id, CommandID(generated: "gw-1:17")]).count == 1)
    }
}
