import Testing

@testable import GatehouseProtocol

@Suite("Identifiers")
struct IdentifiersTests {
    static let sixtyFour = "a" + String(repeating: "b", count: 63)
    static let sixtyFive = sixtyFour + "c"

    static let deviceIDs: [(String, Bool)] = [
        ("thermo-1", true), ("a", true), ("A.b_c-9", true), ("0", true), (sixtyFour, true), (sixtyFive, false),
        ("bridge", false), ("Bridge", true), ("bridge2", true), ("", false), ("a/b", false), ("+", false),
        ("#", false), ("a+", false), ("a#", false), ("\u{0}", false), ("a\u{0}", false), ("-a", false),
        ("_a", false), (".a", false), ("a b", false), ("é", false), ("a:b", false), ("a$", false),
    ]

    @Test("device ids", arguments: deviceIDs)
    func deviceID(_ id: String, _ valid: Bool) {
        #expect(Identifiers.isValidDeviceID(id) == valid)
    }

    @Test("gateway ids allow 'bridge'")
    func gatewayID() {
        #expect(Identifiers.isValidGatewayID("bridge"))
        #expect(Identifiers.isValidGatewayID("gw-1"))
        #expect(Identifiers.isValidGatewayID(Self.sixtyFour))
        #expect(!Identifiers.isValidGatewayID(Self.sixtyFive))
        #expect(!Identifiers.isValidGatewayID("a/b"))
        #expect(!Identifiers.isValidGatewayID("+"))
        #expect(!Identifiers.isValidGatewayID(""))
    }

    static let eventNames: [(String, Bool)] = [
        ("alarm", true), ("door_open", true), ("-x", true), ("_", true), (String(repeating: "e", count: 64), true),
        (String(repeating: "e", count: 65), false), ("", false), ("a.b", false), ("a/b", false), ("+", false),
        ("#", false), ("a b", false), ("\u{0}", false),
    ]

    @Test("event names", arguments: eventNames)
    func eventName(_ name: String, _ valid: Bool) {
        #expect(Identifiers.isValidEventName(name) == valid)
    }

    @Test("command names")
    func commandName() {
        #expect(Identifiers.isValidCommandName("set_setpoint"))
        #expect(Identifiers.isValidCommandName("fw.update"))
        #expect(Identifiers.isValidCommandName(String(repeating: "c", count: 64)))
        #expect(!Identifiers.isValidCommandName(String(repeating: "c", count: 65)))
        #expect(!Identifiers.isValidCommandName("a/b"))
        #expect(!Identifiers.isValidCommandName("a:b"))
        #expect(!Identifiers.isValidCommandName(""))
        #expect(!Identifiers.isValidCommandName("+"))
    }

    @Test("command ids")
    func commandID() {
        #expect(Identifiers.isValidCommandID("c-81f2"))
        #expect(Identifiers.isValidCommandID("a:b.c_d-e"))
        #expect(Identifiers.isValidCommandID(String(repeating: "x", count: 128)))
        #expect(!Identifiers.isValidCommandID(String(repeating: "x", count: 129)))
        #expect(!Identifiers.isValidCommandID(""))
        #expect(!Identifiers.isValidCommandID("a/b"))
        #expect(!Identifiers.isValidCommandID("+"))
        #expect(!Identifiers.isValidCommandID("#"))
        #expect(!Identifiers.isValidCommandID("a b"))
    }

    @Test("Home Assistant object ids")
    func objectID() {
        #expect(Identifiers.objectID("gw-1_thermo.1") == "gw-1_thermo_1")
        #expect(Identifiers.objectID("a/b+c#d é") == "a_b_c_d__")
        #expect(Identifiers.objectID("Temp_C-2") == "Temp_C-2")
        #expect(Identifiers.objectID("") == "")
    }
}
