import GatehouseProtocol

/// libFuzzer entry point: every input is tried as a device text message and as a binary media frame,
/// the two things a device can send. Besides crashes (and, with AddressSanitizer, memory errors) it checks
/// two properties, since the gateway publishes what it parsed: whatever JSON the parser accepts serializes to
/// JSON that parses back to the same value, and a message the fast path reads (`TelemetryScanner`) is the one the
/// tree parse reads, its `data` published byte for byte as the tree's serialized `data`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    if case .success(let message) = DeviceMessage.parse(bytes) {
        guard case .success(let reference) = DeviceMessage.parseTree(bytes), reference == message else {
            fatalError("the fast path read a message the tree parse does not: \(String(decoding: bytes, as: UTF8.self))")
        }
        if case .telemetry(let fast, _, _) = message.body, case .telemetry(let tree, _, _) = reference.body,
            fast.serialized() != tree.object.serialized()
        {
            fatalError("the fast path's data is not the serialized data: \(String(decoding: fast.serialized(), as: UTF8.self))")
        }
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
