import GatehouseProtocol

/// libFuzzer entry point: every input is tried as a device text message and as a binary media frame,
/// the two things a device can send. Besides crashes (and, with AddressSanitizer, memory errors) it checks
/// one property: whatever JSON the parser accepts serializes to JSON that parses back to the same value,
/// since the gateway publishes what it parsed.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    _ = DeviceMessage.parse(bytes)
    _ = MediaFrame.parseHeader(bytes)
    if let value = try? JSONValue(parsing: bytes) {
        let text = value.serialized()
        guard let again = try? JSONValue(parsing: text), again.serialized() == text else {
            fatalError("serialized JSON does not parse back to itself: \(String(decoding: text, as: UTF8.self))")
        }
    }
    return 0
}
