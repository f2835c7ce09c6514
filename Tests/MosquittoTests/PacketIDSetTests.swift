@testable import Mosquitto
import Testing

@Suite struct PacketIDSetTests {
    @Test func keepsEachIdentifierOnceAndForgetsItOnRemoval() {
        var ids = PacketIDSet()
        var removed = ids.remove(7)
        #expect(!removed)
        for id: Int32 in [1, 63, 64, 65535, 7, 7] { ids.insert(id) }
        #expect(ids.count == 5)
        #expect(ids.contains(64) && ids.contains(65535) && !ids.contains(65))
        removed = ids.remove(7)
        #expect(removed)
        removed = ids.remove(7)
        #expect(!removed)
        #expect(ids.count == 4)
        ids.removeAll()
        #expect(ids.count == 0 && !ids.contains(1))
    }

    @Test func identifiersOutsideSixteenBitsAreNotKept() {
        var ids = PacketIDSet()
        for id: Int32 in [-1, 65536, .max] { ids.insert(id) }
        #expect(ids.count == 0)
        let removed = ids.remove(65536)
        #expect(!removed)
    }

    /// Against a `Set` over the whole range: inserts and removals in a scrambled but fixed order.
    @Test func agreesWithASet() {
        var ids = PacketIDSet()
        var reference = Set<Int32>()
        for step in 0..<40_000 {
            let id = Int32(((step % 25_000) &* 40_503) & 0xFFFF)  // each id of the first 15,000 steps comes again
            if step % 3 == 2 {
                let removed = ids.remove(id)
                #expect(removed == (reference.remove(id) != nil))
            } else {
                ids.insert(id)
                reference.insert(id)
            }
        }
        #expect(ids.count == reference.count)
        #expect(reference.allSatisfy(ids.contains))
    }
}
