import Testing

@testable import GatehouseProtocol

@Suite("Saturating arithmetic")
struct SaturatingArithmeticTests {
    @Test func addsWithinRange() {
        #expect(Int64(40).addingSaturated(2) == 42)
        #expect(Int64(-40).subtractingSaturated(2) == -42)
    }

    @Test func holdsAtTheLimits() {
        #expect(Int64.max.addingSaturated(1) == .max)
        #expect(Int64.min.addingSaturated(-1) == .min)
        #expect(Int64.min.subtractingSaturated(1) == .min)
        #expect(Int64(5).subtractingSaturated(.min) == .max)
        #expect(Int64.max.subtractingSaturated(-1) == .max)
    }
}
