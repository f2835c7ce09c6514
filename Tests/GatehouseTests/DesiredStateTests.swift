import GatehouseProtocol
import Testing

@testable import Gatehouse

/// The gateway's desired-state decisions without I/O: applying a patch, which gateway applies, what a
/// retained document changes, and when the delta is published.
@Suite struct DesiredStateTests {
    let none = Capabilities(nil)

    func apply(_ data: JSONObject, version: Int64? = nil, to current: DesiredDocument?, capabilities: Capabilities? = nil,
               maxBytes: Int = 16384) -> DesiredPatch.Outcome {
        DesiredPatch.apply(DesiredPatchRequest(data: data, version: version), to: current, capabilities: capabilities ?? none,
                           maxBytes: maxBytes, now: 7)
    }

    @Test func firstPatchIsVersionOneAndEachRaisesByOne() {
        let first = apply(["a": 1], to: nil)
        #expect(first == .accepted(DesiredDocument(ts: 7, version: 1, data: ["a": 1])))
        let same = apply([:], to: DesiredDocument(ts: 1, version: 1, data: ["a": 1]))
        #expect(same == .accepted(DesiredDocument(ts: 7, version: 2, data: ["a": 1])), "a patch that changes nothing still counts")
    }

    @Test func patchMerges() {
        let current = DesiredDocument(ts: 1, version: 3, data: ["o": ["x": 1, "y": 2], "k": true])
        #expect(apply(["o": ["y": nil, "z": 3], "k": nil], to: current) == .accepted(DesiredDocument(ts: 7, version: 4, data: ["o": ["x": 1, "z": 3]])))
    }

    @Test func versionConflicts() {
        let current = DesiredDocument(ts: 1, version: 3, data: [:])
        #expect(apply([:], version: 3, to: current) == .accepted(DesiredDocument(ts: 7, version: 4, data: [:])))
        for wrong: Int64 in [0, 2, 4, Int64.max] {
            guard case .rejected(.versionConflict, _) = apply([:], version: wrong, to: current) else {
                Issue.record("version \(wrong) against 3 should conflict")
                continue
            }
        }
        #expect(apply([:], version: 0, to: nil) == .accepted(DesiredDocument(ts: 7, version: 1, data: [:])))
    }

    @Test func theHighestVersionIsRefusedNotWrapped() {
        let top = DesiredDocument(ts: 1, version: Int64.max, data: [:])
        guard case .rejected(.versionConflict, _) = apply(["a": 1], to: top) else {
            Issue.record("Int64.max has no next version")
            return
        }
    }

    @Test func badParamsComeBeforeTooBig() throws {
        let capabilities = Capabilities(["state": ["s": ["type": "string"]]])
        guard case .rejected(.badParams, _) = apply(["s": 1], to: nil, capabilities: capabilities, maxBytes: 2) else {
            Issue.record("expected bad_params")
            return
        }
    }

    @Test func tooBigCountsTheMergedCompactData() {
        // {"s":"xxxx"} is 12 bytes.
        #expect(apply(["s": "xxxx"], to: nil, maxBytes: 12) == .accepted(DesiredDocument(ts: 7, version: 1, data: ["s": "xxxx"])))
        guard case .rejected(.tooBig, _) = apply(["s": "xxxxx"], to: nil, maxBytes: 12) else {
            Issue.record("13 bytes over 12")
            return
        }
        let current = DesiredDocument(ts: 1, version: 1, data: ["s": "xxxx"])
        guard case .rejected(.tooBig, _) = apply(["t": 1], to: current, maxBytes: 12) else {
            Issue.record("the resulting document counts, not the patch")
            return
        }
    }

    @Test func theHolderAppliesElseTheSmallestOnlineGateway() {
        #expect(DesiredPatch.isApplier(myself: "gw-b", holdsDevice: true, otherHolder: nil, onlineGateways: ["gw-a", "gw-b"]))
        #expect(!DesiredPatch.isApplier(myself: "gw-a", holdsDevice: false, otherHolder: "gw-b", onlineGateways: ["gw-a", "gw-b"]))
        #expect(DesiredPatch.isApplier(myself: "gw-a", holdsDevice: false, otherHolder: nil, onlineGateways: ["gw-a", "gw-b"]))
        #expect(!DesiredPatch.isApplier(myself: "gw-b", holdsDevice: false, otherHolder: nil, onlineGateways: ["gw-a", "gw-b"]))
        #expect(DesiredPatch.isApplier(myself: "gw-b", holdsDevice: false, otherHolder: nil, onlineGateways: []),
                "before its own bridge state echoes back a gateway counts itself")
    }

    @Test func retainedDesiredVersionsOnlyGrow() {
        var record = DesiredRecord()
        #expect(record.observe(desired: DesiredDocument(ts: 1, version: 2, data: ["a": 1])) == .newer)
        #expect(record.observe(desired: DesiredDocument(ts: 2, version: 1, data: ["a": 9])) == .ignored)
        #expect(record.observe(desired: DesiredDocument(ts: 2, version: 2, data: ["a": 9])) == .ignored, "our own publish echoes back")
        #expect(record.version == 2 && record.document?.data == ["a": 1])
        #expect(record.observe(desired: nil) == .cleared)
        #expect(record.version == 0)
        #expect(record.observe(desired: nil) == .ignored)
    }

    @Test func deltaIsPublishedAfterPatchesAlwaysAndAfterStateOnlyWhenItChanges() {
        var record = DesiredRecord()
        #expect(record.refreshDelta(reported: nil, always: true, now: 1) == nil, "no document, no delta")
        let document = DesiredDocument(ts: 1, version: 1, data: ["sp": 21])
        record.accept(document)
        record.noteStored(document)
        let reported = StateDocument(ts: 1, version: 4, data: ["sp": 19])
        #expect(record.refreshDelta(reported: reported, always: true, now: 10) == DeltaDocument(ts: 10, version: 1, stateVersion: 4, data: ["sp": 21]))
        #expect(record.pendingSince == 10)
        #expect(record.refreshDelta(reported: StateDocument(ts: 2, version: 5, data: ["sp": 19, "x": 1]), always: false, now: 20) == nil)
        #expect(record.refreshDelta(reported: StateDocument(ts: 3, version: 6, data: ["sp": 21.0]), always: false, now: 30)
                == DeltaDocument(ts: 30, version: 1, stateVersion: 6, data: [:]))
        #expect(record.pendingSince == nil)
        #expect(record.pendingDelta(reported: StateDocument(ts: 3, version: 6, data: ["sp": 21.0])) == nil)
    }

    @Test func pendingSinceKeepsTheFirstMoment() {
        var record = DesiredRecord()
        let document = DesiredDocument(ts: 1, version: 1, data: ["a": 1, "b": 2])
        record.accept(document)
        record.noteStored(document)
        _ = record.refreshDelta(reported: nil, always: true, now: 100)
        _ = record.refreshDelta(reported: StateDocument(ts: 1, version: 1, data: ["a": 1]), always: false, now: 200)
        #expect(record.pendingSince == 100)
    }

    /// Deltas and frames are made of the document the broker or the spool has: not of one on its way, which the
    /// broker may still refuse.
    @Test func aDocumentOnItsWayIsNotWhatDeltasAreMadeOf() {
        var record = DesiredRecord()
        let first = DesiredDocument(ts: 1, version: 1, data: ["sp": 21])
        let second = DesiredDocument(ts: 2, version: 2, data: ["sp": 22])
        let reported = StateDocument(ts: 1, version: 1, data: ["sp": 19])
        record.accept(first)
        #expect(record.pendingDelta(reported: reported) == nil)
        #expect(record.refreshDelta(reported: reported, always: true, now: 5) == nil)
        record.noteStored(first)
        record.accept(second)
        #expect(record.pendingDelta(reported: reported)?.data == ["sp": 21])
        // The first, spooled, is replayed: the spool may still refuse the second.
        #expect(!record.supersedes(desired: first))
        #expect(record.refreshDelta(reported: reported, always: true, now: 6)?.version == 1)
        record.revert(second, to: first)  // the broker refused the second
        #expect(record.document == first && record.stored == first)
        record.accept(second)
        record.noteStored(second)
        #expect(record.pendingDelta(reported: reported)?.data == ["sp": 22])
        // Another gateway's newer document, seen on the broker, is stored.
        record.accept(DesiredDocument(ts: 3, version: 3, data: ["sp": 23]))
        #expect(record.observe(desired: DesiredDocument(ts: 4, version: 4, data: ["sp": 24])) == .newer)
        #expect(record.stored?.version == 4)
    }

    @Test func olderRetainedDeltaIsIgnored() {
        var record = DesiredRecord()
        record.observe(delta: DeltaDocument(ts: 5, version: 2, stateVersion: 3, data: ["a": 1]))
        record.observe(delta: DeltaDocument(ts: 6, version: 2, stateVersion: 2, data: [:]))
        #expect(record.delta?.stateVersion == 3 && record.pendingSince == 5)
        record.observe(delta: nil)
        #expect(record.isEmpty)
    }
}

@Suite struct DesiredBookTests {
    /// After a (re)connect the broker's retained copies are the truth, lower versions too, and a document the broker
    /// no longer has (cleared while the gateway was cut off) is named for clearing; outside a resync a lower version
    /// is still ignored.
    @Test func aResyncTakesTheBrokersCopiesAndNamesTheDocumentsItNoLongerHas() {
        var book = DesiredBook()
        for device in ["kept", "remade", "cleared"] {  // seen on the broker before the cut
            _ = book.update(device) { $0.observe(desired: DesiredDocument(ts: 1, version: 5, data: ["old": 1])) }
        }
        book.beginResync()
        let kept = DesiredDocument(ts: 1, version: 5, data: ["old": 1]), remade = DesiredDocument(ts: 2, version: 2, data: ["new": 1])
        for (device, document) in [("kept", kept), ("remade", remade)] {
            book.seen(device)
            let resyncing = book.isResyncing
            _ = book.update(device) { $0.observe(desired: document, resyncing: resyncing) }
        }
        #expect(book.records["remade"]?.document == remade && book.records["kept"]?.document == kept)
        #expect(book.endResync() == ["cleared"] && !book.isResyncing)
        #expect(book.update("remade") { $0.observe(desired: DesiredDocument(ts: 3, version: 1, data: [:])) } == .ignored)
    }

    /// A document this gateway accepted whose retained copy has not come back (it may wait in the spool) is not
    /// lowered or cleared by a resync; once its echo came, the broker's copy is the truth again.
    @Test func aResyncLeavesADocumentOfOursOnItsWayAlone() {
        var record = DesiredRecord()
        let ours = DesiredDocument(ts: 2, version: 6, data: ["ours": 1]), older = DesiredDocument(ts: 1, version: 5, data: ["old": 1])
        record.accept(ours)
        #expect(record.observe(desired: older, resyncing: true) == .ignored && record.document == ours)
        #expect(record.observe(desired: nil, resyncing: true) == .ignored && record.document == ours)
        #expect(record.observe(desired: ours) == .ignored && record.unconfirmed == nil)  // its echo
        #expect(record.observe(desired: older, resyncing: true) == .newer && record.document == older)
    }

    /// What the spool's replay leaves out: a lower version than the broker's copy, or another gateway's document of the
    /// same version; this gateway's own latest goes. A delta older than the one known, or a withdrawal while there is a
    /// document again.
    @Test func theReplaySkipsDesiredDocumentsTheBrokerHasSuperseded() {
        var record = DesiredRecord()
        let ours = DesiredDocument(ts: 2, version: 6, data: ["ours": 1])
        record.accept(ours)
        record.noteStored(ours)  // in the spool
        #expect(record.observe(desired: ours) == .ignored)  // and its echo from the broker
        #expect(!record.supersedes(desired: ours))
        #expect(record.supersedes(desired: DesiredDocument(ts: 1, version: 5, data: [:])))
        #expect(record.supersedes(desired: DesiredDocument(ts: 3, version: 6, data: ["theirs": 1])))
        record.observe(delta: DeltaDocument(ts: 5, version: 6, stateVersion: 4, data: ["ours": 1]))
        #expect(record.supersedes(delta: DeltaDocument(ts: 4, version: 6, stateVersion: 3, data: ["ours": 1])))
        #expect(!record.supersedes(delta: DeltaDocument(ts: 5, version: 6, stateVersion: 4, data: ["ours": 1])))
        #expect(record.supersedes(delta: DeltaDocument(ts: 4, version: 5, stateVersion: 9, data: [:])))
        #expect(record.supersedes(delta: nil) && !DesiredRecord().supersedes(delta: nil))
    }

    /// Three patches of ours spooled one after the other (v1, ok, v2, ok, v3, ok): each document is replayed before its
    /// `ok`, not left out because the later ones are ours too.
    @Test func theReplayKeepsEveryDocumentOfOursTheBrokerHasNotSuperseded() {
        var record = DesiredRecord()
        let documents = (1...3).map { DesiredDocument(ts: Int64($0), version: Int64($0), data: ["sp": .number(JSONNumber(20 + $0))]) }
        for document in documents {
            record.accept(document)
            record.noteStored(document)
        }
        for document in documents { #expect(!record.supersedes(desired: document)) }
        // Another gateway's v2 on the broker: our v1 and our other v2 would roll it back; our v3 goes.
        #expect(record.observe(desired: DesiredDocument(ts: 9, version: 2, data: ["theirs": 1]), resyncing: true) == .ignored)
        #expect(record.supersedes(desired: documents[0]) && record.supersedes(desired: documents[1]))
        #expect(!record.supersedes(desired: documents[2]))
    }

    /// A refused patch gives back what it replaced, the protection of an earlier document of ours still in the spool
    /// too: a resync does not clear that one.
    @Test func aRefusedPatchKeepsAnEarlierSpooledDocumentProtected() {
        var record = DesiredRecord()
        let first = DesiredDocument(ts: 1, version: 1, data: ["sp": 21]), second = DesiredDocument(ts: 2, version: 2, data: ["sp": 22])
        record.accept(first)
        record.noteStored(first)  // in the spool
        record.accept(second)
        record.revert(second, to: first)  // the spool was full
        #expect(record.unconfirmed == 1)
        #expect(record.observe(desired: nil, resyncing: true) == .ignored && record.document == first)
    }

    /// The earlier document's echo came while the next one was on its way: that one's refusal protects nothing any
    /// more, and a later clear on the broker is followed.
    @Test func aRefusalAfterTheEarlierDocumentsEchoProtectsNothing() {
        var record = DesiredRecord()
        let first = DesiredDocument(ts: 1, version: 1, data: ["sp": 21]), second = DesiredDocument(ts: 2, version: 2, data: ["sp": 22])
        record.accept(first)
        record.noteStored(first)
        record.accept(second)
        #expect(record.observe(desired: first) == .ignored)  // the echo of the first
        record.revert(second, to: first)
        #expect(record.unconfirmed == nil)
        #expect(record.observe(desired: nil, resyncing: true) == .cleared)
    }

    @Test func countsPendingDeltasAndForgetsEmptyRecords() {
        var book = DesiredBook()
        let document = DesiredDocument(ts: 1, version: 1, data: ["x": 1])
        book.update("a") { $0.accept(document) }
        book.update("a") { $0.noteStored(document) }
        _ = book.update("a") { $0.refreshDelta(reported: nil, always: true, now: 1) }
        book.update("b") { $0.observe(delta: DeltaDocument(ts: 1, version: 1, stateVersion: 0, data: ["y": 2])) }
        #expect(book.pendingCount == 2)
        _ = book.update("a") { $0.refreshDelta(reported: StateDocument(ts: 2, version: 1, data: ["x": 1]), always: false, now: 2) }
        #expect(book.pendingCount == 1)
        book.update("b") { $0.observe(delta: nil) }
        #expect(book.pendingCount == 0 && book.records["b"] == nil && book.records["a"] != nil)
    }
}
