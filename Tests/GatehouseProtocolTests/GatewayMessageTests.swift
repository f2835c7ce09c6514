import Testing

@testable import GatehouseProtocol

@Suite("Gateway messages")
struct GatewayMessageTests {
    static let shapes: [(GatewayMessage, String)] = [
        (
            .welcome(device: "thermo-1", gateway: "gw-1", session: 7, heartbeatS: 30, maxMessageBytes: 65536),
            #"{"type":"welcome","device":"thermo-1","gateway":"gw-1","session":7,"heartbeat_s":30,"max_message_bytes":65536}"#
        ),
        (.ack(seq: 42), #"{"type":"ack","seq":42}"#),
        (.ack(seq: .max), #"{"type":"ack","seq":18446744073709551615}"#),
        (
            .nack(seq: 43, code: "rate_limited", message: "slow \"down\""),
            #"{"type":"nack","seq":43,"error":{"code":"rate_limited","message":"slow \"down\""}}"#
        ),
        (
            .command(id: CommandID(generated: "c-81f2"), name: "set_setpoint", params: ["celsius": 21.5], deadline: 1_763_731_200_000),
            #"{"type":"command","id":"c-81f2","name":"set_setpoint","params":{"celsius":21.5},"deadline":1763731200000}"#
        ),
        (
            .command(id: CommandID(json: 9)!, name: "reboot", params: [:], deadline: 1),
            #"{"type":"command","id":9,"name":"reboot","params":{},"deadline":1}"#
        ),
        (
            .error(code: "bad_message", message: "line\nbreak"),
            #"{"type":"error","error":{"code":"bad_message","message":"line\nbreak"}}"#
        ),
    ]

    @Test("exact encoded strings", arguments: 0..<shapes.count)
    func encode(_ index: Int) {
        let (message, expected) = Self.shapes[index]
        #expect(message.encodedString() == expected)
        #expect(message.encoded() == Array(expected.utf8))
    }

    @Test("parse round-trips", arguments: 0..<shapes.count)
    func parse(_ index: Int) {
        let (message, expected) = Self.shapes[index]
        #expect(GatewayMessage.parse(Array(expected.utf8)) == message)
    }

    @Test("ackString")
    func ackString() {
        #expect(GatewayMessage.ackString(seq: 0) == #"{"type":"ack","seq":0}"#)
        #expect(GatewayMessage.ackString(seq: 42) == #"{"type":"ack","seq":42}"#)
        #expect(GatewayMessage.ackString(seq: .max) == #"{"type":"ack","seq":18446744073709551615}"#)
    }

    @Test("parse refuses other shapes", arguments: [
        "", "[]", #"{"type":"ack"}"#, #"{"type":"ack","seq":-1}"#, #"{"type":"hello"}"#,
        #"{"type":"nack","seq":1}"#, #"{"type":"command","id":"a/b","name":"x","deadline":1}"#,
        #"{"type":"welcome","device":"d"}"#,
    ])
    func refuses(_ text: String) {
        #expect(GatewayMessage.parse(Array(text.utf8)) == nil)
    }

    @Test("parse defaults")
    func defaults() {
        #expect(GatewayMessage.parse(Array(#"{"type":"command","id":1,"name":"x","deadline":5}"#.utf8)) == .command(id: CommandID(json: 1)!, name: "x", params: [:], deadline: 5))
        #expect(GatewayMessage.parse(Array(#"{"type":"error","error":{"code":"bad_message"}}"#.utf8)) == .error(code: "bad_message", message: ""))
    }
}
