import GatehouseProtocol

/// libFuzzer entry point: every input is tried as a device text message and as a binary media frame,
/// the two things a device can send. Besides crashes (and, with AddressSanitizer, memory errors) it checks
/// two properties, since the gateway publishes what it parsed: whatever JSON the parser accepts serializes to
/// JSON that parses back to the same value, and a telemetry message's kept `data` text is exactly its
/// serialized `data`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    if case .success(let message) = DeviceMessage.parse(bytes), let compact = message.compactData,
        case .telemetry(let object, _, _) = message.body, compact != object.serialized()
    {
        fatalError("kept data text is not the serialized data: \(String(decoding: compact, as: UTF8.self))")
    }
    _ = MediaFrame.parseHeader(bytes)
    if let value = try? JSONValue(parsing: bytes) {
        let text = value.serialized()
        guard let again = try? JSONValue(parsing: text), again.serialized() == text else {
            fatalError("serialized JSON does not parse back to itself: \(String(decoding: text, as: UTF8.self))")
        }
    }
    return 0
}
