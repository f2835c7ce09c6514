import Testing

@testable import GatehouseProtocol

@Suite("Device messages")
struct DeviceMessageTests {
    func parse(_ text: String) -> Result<DeviceMessage, BadMessageError> {
        DeviceMessage.parse(Array(text.utf8))
    }

    func message(_ text: String) throws -> DeviceMessage {
        try parse(text).get()
    }

    func failure(_ text: String) -> BadMessageError? {
        guard case .failure(let error) = parse(text) else { return nil }
        return error
    }

    @Test("hello")
    func hello() throws {
        let parsed = try message(
            #"{"type":"hello","kind":"thermostat","model":"T1","firmware":"1.2.3","capabilities":{"commands":{}},"extra":1}"#
        )
        #expect(parsed == DeviceMessage(seq: nil, body: .hello(DeviceHello(kind: "thermostat", model: "T1", firmware: "1.2.3", capabilities: ["commands": [:]]))))
        #expect(try message(#"{"type":"hello"}"#) == DeviceMessage(seq: nil, body: .hello(DeviceHello())))
        #expect(try message(#"{"type":"hello","kind":null}"#) == DeviceMessage(seq: nil, body: .hello(DeviceHello())))
        #expect(failure(#"{"type":"hello","kind":5}"#) != nil)
        #expect(failure(#"{"type":"hello","capabilities":[]}"#) != nil)
    }

    @Test("telemetry")
    func telemetry() throws {
        let parsed = try message(#"{"type":"telemetry","seq":7,"ts":1763731200000,"qos":0,"data":{"temperature":21.50}}"#)
        #expect(parsed.seq == 7)
        guard case .telemetry(let data, let ts, let qos) = parsed.body else {
            Issue.record("not telemetry")
            return
        }
        #expect(data.object["temperature"]?.numberValue?.text == "21.50")
        #expect(ts?.text == "1763731200000")
        #expect(qos == 0)
        #expect(try message(#"{"type":"telemetry","data":{}}"#).body == .telemetry(data: [:], ts: nil, qos: nil))
        #expect(try message(#"{"type":"telemetry","data":{},"qos":1}"#).body == .telemetry(data: [:], ts: nil, qos: 1))
        for bad in [
            #"{"type":"telemetry"}"#, #"{"type":"telemetry","data":[]}"#, #"{"type":"telemetry","data":null}"#,
            #"{"type":"telemetry","data":{},"qos":2}"#, #"{"type":"telemetry","data":{},"qos":"1"}"#,
            #"{"type":"telemetry","data":{},"qos":1.0}"#, #"{"type":"telemetry","data":{},"ts":1.5}"#,
            #"{"type":"telemetry","data":{},"ts":"now"}"#, #"{"type":"telemetry","data":{},"ts":1e3}"#,
        ] {
            #expect(failure(bad) != nil, "\(bad)")
        }
    }

    @Test("state")
    func state() throws {
        #expect(try message(#"{"type":"state","data":{"mode":"heat"},"seq":1}"#) == DeviceMessage(seq: 1, body: .state(data: ["mode": "heat"])))
        #expect(failure(#"{"type":"state"}"#) != nil)
        #expect(failure(#"{"type":"state","data":"x"}"#) != nil)
    }

    @Test("event")
    func event() throws {
        #expect(try message(#"{"type":"event","name":"door_open","data":{"x":1}}"#).body == .event(name: "door_open", data: ["x": 1]))
        #expect(try message(#"{"type":"event","name":"alarm"}"#).body == .event(name: "alarm", data: .object([:])))
        #expect(try message(#"{"type":"event","name":"alarm","data":null}"#).body == .event(name: "alarm", data: .null))
        for bad in [
            #"{"type":"event"}"#, #"{"type":"event","name":""}"#, #"{"type":"event","name":"a/b"}"#,
            #"{"type":"event","name":"a.b"}"#, #"{"type":"event","name":"+"}"#, #"{"type":"event","name":5}"#,
            #"{"type":"event","name":"ok","data":[1]}"#, #"{"type":"event","name":"ok","data":"x"}"#,
        ] {
            #expect(failure(bad) != nil, "\(bad)")
        }
    }

    @Test("response")
    func response() throws {
        let ok = try message(#"{"type":"response","id":"c-81f2","status":"ok","data":{"celsius":21.5},"seq":3}"#)
        #expect(ok == DeviceMessage(seq: 3, body: .response(id: CommandID(generated: "c-81f2"), status: .ok, data: ["celsius": 21.5], error: nil)))
        let numeric = try message(#"{"type":"response","id":42}"#)
        #expect(numeric.body == .response(id: CommandID(json: 42)!, status: .ok, data: .null, error: nil))
        let failed = try message(#"{"type":"response","id":"x","status":"error"}"#)
        #expect(failed.body == .response(id: CommandID(generated: "x"), status: .error, data: .null, error: DeviceMessage.defaultDeviceError))
        #expect(DeviceMessage.defaultDeviceError == ["code": "device_error", "message": "device reported an error"])
        let explained = try message(#"{"type":"response","id":"x","status":"error","error":{"code":"busy","message":"later"}}"#)
        #expect(explained.body == .response(id: CommandID(generated: "x"), status: .error, data: .null, error: ["code": "busy", "message": "later"]))
        for bad in [
            #"{"type":"response"}"#, #"{"type":"response","id":"a/b"}"#, #"{"type":"response","id":-1e2}"#,
            #"{"type":"response","id":1.5}"#, #"{"type":"response","id":true}"#, #"{"type":"response","id":"x","status":"timeout"}"#,
            #"{"type":"response","id":"x","status":1}"#, #"{"type":"response","id":"x","error":"bad"}"#,
        ] {
            #expect(failure(bad) != nil, "\(bad)")
        }
    }

    @Test("valid seq values", arguments: [("0", UInt64(0)), ("18446744073709551615", UInt64.max), ("42", UInt64(42))])
    func validSeq(_ text: String, _ expected: UInt64) throws {
        #expect(try message(#"{"type":"state","data":{},"seq":\#(text)}"#).seq == expected)
    }

    @Test("invalid seq values make the message malformed with no seq", arguments: [
        "-1", "18446744073709551616", "1.5", "\"1\"", "1e2", "1.0", "-0", "null", "true", "[1]", "{}",
    ])
    func invalidSeq(_ text: String) {
        let error = failure(#"{"type":"state","data":{},"seq":\#(text)}"#)
        #expect(error != nil)
        #expect(error?.seq == nil)
    }

    @Test("a bad message keeps its readable seq")
    func badMessageKeepsSeq() {
        #expect(failure(#"{"type":"nope","seq":9}"#) == BadMessageError(seq: 9, message: "unknown type 'nope'"))
        #expect(failure(#"{"seq":10}"#)?.seq == 10)
        #expect(failure(#"{"type":5,"seq":11}"#)?.seq == 11)
        #expect(failure(#"{"type":"telemetry","seq":18446744073709551615,"data":5}"#)?.seq == .max)
    }

    @Test("not JSON, not an object, or not strict JSON", arguments: [
        "", "not json", "[]", "42", "\"hello\"", #"{"type":"state","data":{"t":NaN}}"#,
        #"{"type":"state","data":{"t":1e999}}"#, #"{"type":"state","data":{"t":"\ud800"}}"#,
        #"{"type":"state","data":{}} x"#,
    ])
    func notAnObject(_ text: String) {
        #expect(failure(text) != nil)
    }

    @Test("encode then parse round-trips every type", arguments: [
        DeviceMessage(seq: nil, body: .hello(DeviceHello(kind: "camera", model: nil, firmware: "2", capabilities: ["commands": [:]]))),
        DeviceMessage(seq: 0, body: .telemetry(data: ["t": 21.5], ts: JSONNumber(1_763_731_200_000 as Int64), qos: 1)),
        DeviceMessage(seq: .max, body: .state(data: ["mode": "heat", "x": nil])),
        DeviceMessage(seq: 5, body: .event(name: "alarm", data: .null)),
        DeviceMessage(seq: nil, body: .event(name: "alarm", data: ["level": 3])),
        DeviceMessage(seq: 6, body: .response(id: CommandID(json: 42)!, status: .ok, data: .null, error: nil)),
        DeviceMessage(seq: 7, body: .response(id: CommandID(generated: "c-1"), status: .error, data: [1, 2], error: ["code": "x", "message": "y"])),
    ])
    func roundTrip(_ original: DeviceMessage) throws {
        #expect(try DeviceMessage.parse(original.encoded()).get() == original)
    }

    @Test("encoded shape")
    func encodedShape() {
        let telemetry = DeviceMessage(seq: 42, body: .telemetry(data: ["temperature": 21.5], ts: nil, qos: nil))
        #expect(telemetry.encodedString() == #"{"type":"telemetry","seq":42,"data":{"temperature":21.5}}"#)
        let response = DeviceMessage(seq: nil, body: .response(id: CommandID(json: 7)!, status: .ok, data: .null, error: nil))
        #expect(response.encodedString() == #"{"type":"response","id":7,"status":"ok","data":null}"#)
    }

    @Test("parsing from a buffer pointer")
    func bufferPointer() {
        let bytes = Array(#"{"type":"state","data":{},"seq":1}"#.utf8)
        let result = bytes.withUnsafeBytes { DeviceMessage.parse($0) }
        #expect((try? result.get())?.seq == 1)
    }
}
