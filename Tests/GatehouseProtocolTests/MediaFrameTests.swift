import Testing

@testable import GatehouseProtocol

@Suite("Media frames")
struct MediaFrameTests {
    func frame(_ header: String, payload: [UInt8] = [1, 2, 3]) -> [UInt8] {
        let json = Array(header.utf8)
        return [UInt8(json.count >> 8), UInt8(json.count & 0xFF)] + json + payload
    }

    @Test("parse a full header")
    func parseFull() throws {
        let bytes = frame(#"{"stream":"snapshot","content_type":"image/jpeg","id":"c-81f2"}"#)
        let (header, offset) = try MediaFrame.parseHeader(bytes).get()
        #expect(header == MediaHeader(stream: "snapshot", contentType: "image/jpeg", id: CommandID(generated: "c-81f2")))
        #expect(Array(bytes[offset...]) == [1, 2, 3])
    }

    @Test("a content_type of up to 255 printable ASCII characters, parameters and all")
    func contentTypes() throws {
        for contentType in ["text/plain; charset=utf-8", String(repeating: "a", count: 255)] {
            let bytes = frame(#"{"stream":"s","content_type":"\#(contentType)"}"#)
            #expect(try MediaFrame.parseHeader(bytes).get().header.contentType == contentType)
        }
    }

    @Test("content_type defaults, id optional, empty payload")
    func parseDefaults() throws {
        let bytes = frame(#"{"stream":"live"}"#, payload: [])
        let (header, offset) = try MediaFrame.parseHeader(bytes).get()
        #expect(header == MediaHeader(stream: "live", contentType: "application/octet-stream", id: nil))
        #expect(offset == bytes.count)
        #expect(try MediaFrame.parseHeader(frame(#"{"stream":"s","id":7}"#)).get().header.id == CommandID(json: 7))
    }

    @Test("encode then parse round-trips")
    func roundTrip() throws {
        let header = MediaHeader(stream: "snapshot", contentType: "image/png", id: CommandID(json: 12))
        let payload: [UInt8] = Array(0...255)
        let bytes = MediaFrame.encode(header: header, payload: payload)
        let (parsed, offset) = try MediaFrame.parseHeader(bytes).get()
        #expect(parsed == header)
        #expect(Array(bytes[offset...]) == payload)
        let json = #"{"stream":"snapshot","content_type":"image/png","id":12}"#
        #expect(Array(bytes[2..<offset]) == Array(json.utf8))
        #expect(Int(bytes[0]) << 8 | Int(bytes[1]) == json.utf8.count)
    }

    @Test("bad frames", arguments: [
        [], [0], [0, 10, 0x7B, 0x7D], [0, 0], [0, 2, 0x5B, 0x5D], [0xFF, 0xFF, 0x7B],
    ] as [[UInt8]])
    func badFrames(_ bytes: [UInt8]) {
        #expect(throws: BadMessageError.self) { try MediaFrame.parseHeader(bytes).get() }
    }

    @Test("bad headers", arguments: [
        "{}", #"{"stream":""}"#, #"{"stream":"a/b"}"#, #"{"stream":5}"#, #"{"stream":"s","content_type":5}"#,
        #"{"stream":"s","id":"a b"}"#, #"{"stream":"s","id":-1.5}"#, "not json", #"{"stream":"s"} x"#,
        // A content type libmosquitto would not send as the Content Type property: control characters, none, too long.
        #"{"stream":"s","content_type":"image/jpeg\u0001"}"#, #"{"stream":"s","content_type":"a\nb"}"#,
        #"{"stream":"s","content_type":""}"#, #"{"stream":"s","content_type":"image/\u00e9"}"#,
        #"{"stream":"s","content_type":"\#(String(repeating: "a", count: 256))"}"#,
    ])
    func badHeaders(_ header: String) {
        #expect(throws: BadMessageError.self) { try MediaFrame.parseHeader(frame(header)).get() }
    }

    @Test("a header cut short by the frame end is refused")
    func truncated() {
        let full = frame(#"{"stream":"snapshot"}"#, payload: [])
        for length in 0..<full.count {
            #expect(throws: BadMessageError.self) { try MediaFrame.parseHeader(Array(full.prefix(length))).get() }
        }
    }
}
