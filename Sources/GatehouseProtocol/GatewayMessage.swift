/// One text frame from the gateway to a device (PROTOCOL.md 3.1).
public enum GatewayMessage: Sendable, Equatable {
    /// Always the first message: who the device is, which gateway, the session number and limits.
    case welcome(device: String, gateway: String, session: Int64, heartbeatS: Int, maxMessageBytes: Int)
    /// The message with this `seq` is safe.
    case ack(seq: UInt64)
    /// The message with this `seq` was not taken; `code` is a ``NackCode`` raw value.
    case nack(seq: UInt64, code: String, message: String)
    /// A command for the device to run; `deadline` is Unix milliseconds.
    case command(id: CommandID, name: String, params: JSONObject, deadline: Int64)
    /// A message without a readable `seq` was refused.
    case error(code: String, message: String)
    /// What of the desired state the device does not report yet (PROTOCOL.md 7), at desired `version`.
    case desired(version: Int64, data: JSONObject)

    /// The message as compact JSON bytes, in the exact key order of PROTOCOL.md 3.1,
    /// e.g. `{"type":"ack","seq":42}`.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(96)
        switch self {
        case .welcome(let device, let gateway, let session, let heartbeatS, let maxMessageBytes):
            JSONWriter.appendRaw(#"{"type":"welcome","device":"#, to: &out)
            JSONWriter.appendString(device, to: &out)
            JSONWriter.appendRaw(#","gateway":"#, to: &out)
            JSONWriter.appendString(gateway, to: &out)
            JSONWriter.appendRaw(#","session":\#(session),"heartbeat_s":\#(heartbeatS)"#, to: &out)
            JSONWriter.appendRaw(#","max_message_bytes":\#(maxMessageBytes)}"#, to: &out)
        case .ack(let seq):
            JSONWriter.appendRaw(Self.ackString(seq: seq), to: &out)
        case .nack(let seq, let code, let message):
            JSONWriter.appendRaw(#"{"type":"nack","seq":\#(seq),"error":"#, to: &out)
            Self.appendError(code: code, message: message, to: &out)
            out.append(UInt8(ascii: "}"))
        case .command(let id, let name, let params, let deadline):
            JSONWriter.appendRaw(#"{"type":"command","id":"#, to: &out)
            id.json.serialize(into: &out)
            JSONWriter.appendRaw(#","name":"#, to: &out)
            JSONWriter.appendString(name, to: &out)
            JSONWriter.appendRaw(#","params":"#, to: &out)
            params.serialize(into: &out)
            JSONWriter.appendRaw(#","deadline":\#(deadline)}"#, to: &out)
        case .error(let code, let message):
            JSONWriter.appendRaw(#"{"type":"error","error":"#, to: &out)
            Self.appendError(code: code, message: message, to: &out)
            out.append(UInt8(ascii: "}"))
        case .desired(let version, let data):
            JSONWriter.appendRaw(#"{"type":"desired","version":\#(version),"data":"#, to: &out)
            data.serialize(into: &out)
            out.append(UInt8(ascii: "}"))
        }
        return out
    }

    /// The message as a compact JSON string; see ``encoded()``.
    public func encodedString() -> String {
        if case .ack(let seq) = self { return Self.ackString(seq: seq) }
        return String(decoding: encoded(), as: UTF8.self)
    }

    /// `{"type":"ack","seq":<seq>}`, built directly (the gateway sends one per message).
    public static func ackString(seq: UInt64) -> String {
        withAck(seq: seq) { String(decoding: $0, as: UTF8.self) }
    }

    /// Calls `body` with the UTF-8 bytes of `{"type":"ack","seq":<seq>}`, built on the stack: the caller copies
    /// them where they go (a frame's buffer) without an allocation of their own.
    @inlinable
    public static func withAck<Result>(seq: UInt64, _ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        let prefix: StaticString = #"{"type":"ack","seq":"#
        let prefixCount = prefix.utf8CodeUnitCount
        // The prefix, at most 20 digits and the closing brace.
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: prefixCount + 21) { out in
            _ = out.initialize(from: UnsafeBufferPointer(start: prefix.utf8Start, count: prefixCount))
            let end = JSONWriter.writeDecimal(seq, into: out, at: prefixCount)
            out[end] = UInt8(ascii: "}")
            return body(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: out[0...end])))
        }
    }

    private static func appendError(code: String, message: String, to out: inout [UInt8]) {
        JSONWriter.appendRaw(#"{"code":"#, to: &out)
        JSONWriter.appendString(code, to: &out)
        JSONWriter.appendRaw(#","message":"#, to: &out)
        JSONWriter.appendString(message, to: &out)
        out.append(UInt8(ascii: "}"))
    }
}
