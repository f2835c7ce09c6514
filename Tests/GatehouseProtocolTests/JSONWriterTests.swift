@testable import GatehouseProtocol
import Testing

@Suite struct JSONWriterTests {
    /// The digits `String(value)` makes, at every length and at the edges between lengths.
    @Test func decimalDigitsAreStringsDigits() {
        var values: [UInt64] = [0, 1, 9, 10, 11, 99, 100, 101, 105, 1_234, 12_345, UInt64.max, UInt64.max - 1]
        var power: UInt64 = 1
        for _ in 0..<19 {
            power *= 10
            values += [power - 1, power, power + 1, power / 2, power + power / 10 * 3]
        }
        var random = SystemRandomNumberGenerator()
        values += (0..<1_000).map { _ in UInt64.random(in: 0...UInt64.max, using: &random) >> UInt64.random(in: 0...63, using: &random) }
        for value in values {
            var out: [UInt8] = [UInt8(ascii: "x")]
            JSONWriter.appendDecimal(value, to: &out)
            #expect(out == Array("x\(value)".utf8), "\(value)")
        }
    }

    /// Written from where it is asked to, and nowhere else.
    @Test func decimalDigitsGoWhereTheyAreAskedToAndNoFurther() {
        for value: UInt64 in [0, 7, 42, 1_733_500_000_123, UInt64.max] {
            var out = [UInt8](repeating: UInt8(ascii: "x"), count: 30)
            let end = out.withUnsafeMutableBufferPointer { JSONWriter.writeDecimal(value, into: $0, at: 3) }
            let digits = Array("\(value)".utf8)
            #expect(end == 3 + digits.count)
            #expect(out == Array("xxx".utf8) + digits + [UInt8](repeating: UInt8(ascii: "x"), count: 27 - digits.count))
        }
    }

    @Test func rawTextIsAppendedAsItIs() {
        var out: [UInt8] = []
        JSONWriter.appendRaw(#"{"ts":"#, to: &out)
        JSONWriter.appendRaw(String(repeating: "é", count: 20), to: &out)
        #expect(out == Array(#"{"ts":"#.utf8) + Array(String(repeating: "é", count: 20).utf8))
    }
}
