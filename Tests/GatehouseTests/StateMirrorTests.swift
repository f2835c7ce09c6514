import GatehouseProtocol
import Testing

@testable import Gatehouse

/// Reported state across partitions and restarts: versions only grow, and nothing either line reported is lost.
@Suite struct StateMirrorTests {
    func doc(_ version: Int64, _ data: JSONObject, ts: Int64 = 1) -> StateDocument {
        StateDocument(ts: ts, version: version, data: data)
    }

    @Test func diffAndMergeKeepBothLinesWithTheNewerWinningPerMember() {
        let base: JSONObject = ["x": 1, "y": 1, "gone": 0, "nested": ["a": 1, "b": 1]]
        let older: JSONObject = ["x": 2, "y": 1, "nested": ["a": 2, "b": 1]]  // x changed, gone removed, nested.a changed
        let newer: JSONObject = ["x": 1, "y": 3, "gone": 0, "nested": ["a": 1, "b": 3]]
        #expect(StateMerge.diff(from: base, to: older) == ["x": 2, "gone": .null, "nested": ["a": 2]])
        let merged = StateMerge.merge(base: base, older: older, newer: newer)
        #expect(merged == ["x": 2, "y": 3, "nested": ["a": 2, "b": 3]])
        // Both changed the same member: the newer line wins.
        #expect(StateMerge.merge(base: ["x": 1], older: ["x": 2], newer: ["x": 3]) == ["x": 3])
    }

    @Test func ownEchoConfirmsAndForeignDocumentIsAdoptedWhenNothingIsPending() {
        var mirror = StateMirror()
        let first = mirror.apply(patch: ["a": 1], now: 10, maxBytes: 1000)!
        #expect(first.version == 1 && mirror.base != nil)
        #expect(mirror.observeRetained(first, held: true) == .echo)
        #expect(mirror.base == nil)
        #expect(mirror.observeRetained(doc(5, ["b": 2], ts: 99), held: false) == .adopted)
        #expect(mirror.current?.version == 5)
        // Going back below what the broker had is a rollback, never adopted.
        #expect(mirror.observeRetained(doc(4, ["c": 3], ts: 98), held: false) == .rolledBack)
        #expect(mirror.current?.version == 5)
    }

    @Test func holderKeepsItsDocumentAgainstAStaleOneOfTheSameVersion() {
        var mirror = StateMirror()
        let mine = mirror.apply(patch: ["y": 3], now: 10, maxBytes: 1000)!
        _ = mirror.observeRetained(mine, held: true)
        #expect(mirror.observeRetained(doc(mine.version, ["x": 2], ts: 5), held: true) == .rolledBack)
        #expect(mirror.current == mine)
    }

    /// A gateway cut off keeps acking patches; meanwhile the device moved and reported through another one.
    @Test func partitionedLinesAreMergedAboveBothAndTheSpooledOnesSuperseded() {
        var mirror = StateMirror()
        let v1 = doc(1, ["x": 1, "y": 1])
        #expect(mirror.observeRetained(v1, held: true) == .adopted)
        let spooled = mirror.apply(patch: ["x": 2], now: 20, maxBytes: 1000)!  // acked from the spool
        let elsewhere = doc(2, ["x": 1, "y": 3], ts: 30)
        #expect(mirror.observeRetained(elsewhere, held: false) == .conflict)
        // Our own in-flight copy comes back after it (libmosquitto resends it): the conflict stays.
        #expect(mirror.observeRetained(spooled, held: false) == .rolledBack || mirror.base != nil)
        let merged = mirror.resolve(localIsNewer: false, now: 40)!
        #expect(merged.version == 3 && merged.data == ["x": 2, "y": 3])
        #expect(mirror.supersedes(version: spooled.version))
        #expect(!mirror.supersedes(version: 3))
        #expect(mirror.observeRetained(merged, held: false) == .echo)
        #expect(mirror.base == nil)
    }

    @Test func resentOwnCopyAfterAForeignOneKeepsTheConflict() {
        var mirror = StateMirror()
        _ = mirror.observeRetained(doc(1, ["x": 1, "y": 1]), held: true)
        let mine = mirror.apply(patch: ["x": 2], now: 20, maxBytes: 1000)!
        #expect(mirror.observeRetained(doc(2, ["x": 1, "y": 3], ts: 30), held: false) == .conflict)
        #expect(mirror.observeRetained(mine, held: false) == .echo)
        #expect(mirror.base != nil)
        #expect(mirror.resolve(localIsNewer: false, now: 40)?.data == ["x": 2, "y": 3])
    }

    /// Restarted during an outage: the device reported through us again while the broker kept a document
    /// our last run did not save; what the device reported last comes on top.
    @Test func restartedHolderPutsItsNewerPatchOnTop() {
        var mirror = StateMirror(current: doc(4, ["t": 1]), retained: doc(4, ["t": 1]))
        let local = mirror.apply(patch: ["t": 3, "n": 1], now: 50, maxBytes: 1000)!
        #expect(local.version == 5)
        #expect(mirror.observeRetained(doc(5, ["t": 2], ts: 45), held: true) == .conflict)
        let merged = mirror.resolve(localIsNewer: true, now: 60)!
        #expect(merged.version == 6 && merged.data == ["t": 3, "n": 1])
        #expect(mirror.supersedes(version: 5))
    }

    @Test func nothingToSettleWhenTheBrokerHasOnlyTheBase() {
        var mirror = StateMirror()
        _ = mirror.observeRetained(doc(2, ["a": 1]), held: false)
        _ = mirror.apply(patch: ["a": 2], now: 5, maxBytes: 1000)
        #expect(mirror.observeRetained(doc(2, ["a": 1]), held: true) == .ignored)
        #expect(mirror.resolve(localIsNewer: true, now: 6) == nil)
        #expect(!mirror.supersedes(version: 3))
        #expect(mirror.supersedes(version: 2))
    }

    /// A broker that restarted empty no longer has what it had: the spooled copy is replayed, not dropped.
    @Test func onlyWhatTheBrokerSentOnThisConnectionSupersedes() {
        var mirror = StateMirror()
        let mine = mirror.apply(patch: ["mode": "heat"], now: 5, maxBytes: 1000)!
        _ = mirror.observeRetained(mine, held: true)
        #expect(mirror.supersedes(version: mine.version))
        mirror.connectionLost()
        #expect(!mirror.supersedes(version: mine.version))
    }
}
