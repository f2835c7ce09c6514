import Testing

@testable import GatehouseProtocol

/// The pure protocol parts of PROTOCOL.md 7: the delta rule, JSON equivalence, patch requests, the
/// `capabilities.state` check, the `desired` frame and the topics.
@Suite struct DesiredStateProtocolTests {
    func object(_ text: String) throws -> JSONObject {
        try #require(try JSONValue(parsing: Array(text.utf8)).objectValue)
    }

    func delta(_ desired: String, _ reported: String) throws -> String {
        DesiredDelta.compute(desired: try object(desired), reported: try object(reported)).description
    }

    @Test func deltaHoldsWhatTheReportedStateDoesNotMatch() throws {
        #expect(try delta(#"{"a":1,"b":"x"}"#, #"{"a":1,"b":"y","c":3}"#) == #"{"b":"x"}"#)
        #expect(try delta(#"{"a":1}"#, #"{}"#) == #"{"a":1}"#)
        #expect(try delta(#"{}"#, #"{"a":1}"#) == #"{}"#, "keys only the reported state has are not in the delta")
    }

    @Test func numbersCompareByValue() throws {
        #expect(try delta(#"{"a":21,"b":2.5e0,"c":-0}"#, #"{"a":21.0,"b":2.50,"c":0}"#) == "{}")
        #expect(try delta(#"{"a":9007199254740993}"#, #"{"a":9007199254740992}"#) == #"{"a":9007199254740993}"#,
                "64-bit integers compare exactly, not through a Double")
        #expect(try delta(#"{"a":1}"#, #"{"a":"1"}"#) == #"{"a":1}"#)
    }

    @Test func nestedObjectsGiveNestedDeltasOnlyWhenNotEmpty() throws {
        #expect(try delta(#"{"o":{"x":1,"y":{"z":2}}}"#, #"{"o":{"y":{"z":2.0},"x":1,"extra":0}}"#) == "{}")
        #expect(try delta(#"{"o":{"x":1,"y":{"z":2}}}"#, #"{"o":{"x":1,"y":{"z":3}}}"#) == #"{"o":{"y":{"z":2}}}"#)
        #expect(try delta(#"{"o":{"x":1}}"#, #"{"o":5}"#) == #"{"o":{"x":1}}"#, "an object against a non-object is taken whole")
        #expect(try delta(#"{"o":{}}"#, #"{"o":{"a":1}}"#) == "{}")
    }

    @Test func arraysCompareElementByElement() throws {
        #expect(try delta(#"{"l":[1,{"a":2}]}"#, #"{"l":[1.0,{"a":2}]}"#) == "{}")
        #expect(try delta(#"{"l":[1,2]}"#, #"{"l":[2,1]}"#) == #"{"l":[1,2]}"#)
        #expect(try delta(#"{"l":[1]}"#, #"{"l":[1,1]}"#) == #"{"l":[1]}"#)
    }

    @Test func patchRequestFields() throws {
        let full = try DesiredPatchRequest.parse(Array(#"{"id":"p-1","data":{"a":1},"version":3}"#.utf8)).get()
        #expect(full == DesiredPatchRequest(id: CommandID(json: "p-1"), data: ["a": 1], version: 3))
        let nulls = try DesiredPatchRequest.parse(Array(#"{"id":null,"data":{},"version":null}"#.utf8)).get()
        #expect(nulls.id == nil && nulls.version == nil)
        let huge = try DesiredPatchRequest.parse(Array(#"{"data":{},"version":99999999999999999999}"#.utf8)).get()
        #expect(huge.version == Int64.max, "a version beyond Int64 can never match: a conflict, not a trap")
    }

    @Test(arguments: [
        "", "x", "[]", "3", #"{}"#, #"{"data":null}"#, #"{"data":[]}"#, #"{"data":{},"version":-1}"#,
        #"{"data":{},"version":1.0}"#, #"{"data":{},"version":"2"}"#, #"{"data":{},"version":true}"#,
        #"{"id":"a/b","data":{}}"#, #"{"id":-1.5,"data":{}}"#,
    ])
    func badPatchRequests(_ payload: String) {
        guard case .failure = DesiredPatchRequest.parse(Array(payload.utf8)) else {
            Issue.record("\(payload) should be bad_request")
            return
        }
    }

    @Test func badRequestEchoesTheRawID() {
        guard case .failure(let error) = DesiredPatchRequest.parse(Array(#"{"id":7,"data":5}"#.utf8)) else {
            Issue.record("expected a failure")
            return
        }
        #expect(error.rawID == 7)
    }

    @Test func stateCapabilities() throws {
        let capabilities = Capabilities(try object(#"""
            {"state":{"setpoint":{"type":"number","minimum":5,"maximum":35},"mode":{"type":"string","enum":["heat","off"]},
             "n":{"type":"integer","required":true}}}
            """#))
        #expect(capabilities.declaresState)
        #expect(capabilities.check(statePatch: try object(#"{"setpoint":21.5,"mode":"heat"}"#)) == .accepted)
        #expect(capabilities.check(statePatch: try object(#"{}"#)) == .accepted, "required does not apply")
        #expect(capabilities.check(statePatch: try object(#"{"setpoint":null,"fan":null}"#)) == .accepted, "null always passes")
        for bad in [#"{"setpoint":36}"#, #"{"setpoint":"20"}"#, #"{"mode":"cool"}"#, #"{"fan":1}"#, #"{"n":1.5}"#] {
            guard case .badParams = capabilities.check(statePatch: try object(bad)) else {
                Issue.record("\(bad) should be bad_params")
                continue
            }
        }
        #expect(Capabilities(try object(#"{"commands":{}}"#)).check(statePatch: try object(#"{"any":1}"#)) == .accepted)
    }

    @Test func desiredFrameRoundTrips() throws {
        let frame = GatewayMessage.desired(version: 4, data: ["setpoint": 21.5])
        #expect(frame.encodedString() == #"{"type":"desired","version":4,"data":{"setpoint":21.5}}"#)
        #expect(GatewayMessage.parse(frame.encoded()) == frame)
    }

    @Test func topics() {
        let topics = Topics(base: "gh")
        #expect(topics.parse("gh/t-1/desired") == .desired(device: "t-1"))
        #expect(topics.parse("gh/t-1/desired/set") == .desiredSet(device: "t-1"))
        #expect(topics.parse("gh/t-1/delta") == .delta(device: "t-1"))
        #expect(topics.parse("gh/t-1/desired/other") == nil)
        #expect(topics.desiredSet("t-1") == "gh/t-1/desired/set")
    }

    @Test func documentsRefuseWhatTheContractDoesNotDescribe() {
        #expect(DesiredDocument.decode(Array(#"{"ts":1,"version":2,"data":{"a":1}}"#.utf8)) == DesiredDocument(ts: 1, version: 2, data: ["a": 1]))
        #expect(DesiredDocument.decode(Array(#"{"version":-2,"data":{}}"#.utf8)) == nil)
        #expect(DesiredDocument.decode(Array(#"{"version":2}"#.utf8)) == nil)
        #expect(DeltaDocument.decode(Array(#"{"ts":1,"version":2,"state_version":5,"data":{}}"#.utf8))?.stateVersion == 5)
    }
}
