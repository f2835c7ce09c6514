import Testing

@testable import Gatehouse

/// The spool's decisions without I/O: appends, group commits, reading, acknowledging, segments, the disk
/// refusing, `max_age`, and what is kept and rewound for the embedded broker.
@Suite struct SpoolStateTests {
    static let opened = SpoolClockReading(wallMs: 1_750_000_000_000, monotonicMs: 5_000)

    static func entry(_ index: Int, payloadBytes: Int = 0) -> SpoolEntry {
        let payload = payloadBytes > 0 ? [UInt8](repeating: UInt8(index % 256), count: payloadBytes) : Array("\(index)".utf8)
        return SpoolEntry(topic: "t/d/telemetry", payload: payload, receivedAt: 0)
    }

    /// A state opened on an empty log, the bytes its segments hold (the disk, which takes every write), and
    /// the clocks, which the tests move by hand. The helpers do what `Spool` does with the state's answers.
    struct Log {
        var state: SpoolState
        var files: [UInt64: [UInt8]] = [1: []]
        var now = SpoolStateTests.opened
        var nextWriter: Int32 = 4

        init(maxBytes: Int = 1 << 20, maxAgeMs: Int64 = 86_400_000, dropOldest: Bool = false, keepAcknowledgedMs: Int64 = 0) {
            state = SpoolState(limits: .init(maxBytes: maxBytes, maxAgeMs: maxAgeMs, dropOldest: dropOldest, keepAcknowledgedMs: keepAcknowledgedMs))
            let empty = SegmentInfo(number: 1, bytes: 0, records: 0, oldestTs: 0, newestTs: 0)
            _ = state.opened(segments: [empty], writer: 3, now: now)
        }

        mutating func append(_ index: Int, payloadBytes: Int = 0, published: Bool = false) -> SpoolState.Appended {
            state.append(SpoolStateTests.entry(index, payloadBytes: payloadBytes), published: published, completion: { _ in }, now: now)
        }

        /// Appends entries the caller publishes itself; returns their tickets.
        mutating func appendPublished(_ range: Range<Int>) -> [Spool.Ticket?] {
            range.map { append($0, published: true).ticket }
        }

        /// One group commit, as `Spool.flush` makes it; nil when there was nothing to write.
        @discardableResult
        mutating func commit() -> SpoolState.Effects? {
            guard let batch = state.takeBatch() else { return nil }
            if batch.startsNewSegment { startNewSegment() }
            guard case .segment(let number, _, _) = state.writeTarget() else {
                state.batchRefused(batch, diskFailure: nil)
                return nil
            }
            files[number, default: []] += batch.bytes
            let (full, effects) = state.batchWritten(batch)
            if full { startNewSegment() }
            return effects
        }

        mutating func startNewSegment() {
            let number = state.activeSegment
            files[number + 1] = []
            _ = state.segmentStarted(after: number, writer: nextWriter)
            nextWriter += 1
        }

        /// One read, as `Spool.read` makes it.
        mutating func read(limit: Int = 100) -> SpoolState.ReadResult {
            guard let range = state.nextReadRange() else { return SpoolState.ReadResult() }
            let bytes = Array(files[range.start.segment]![range.start.offset..<range.end])
            let (found, damaged) = SpoolRecord.decodeRun(bytes, at: range.start.offset, durableEnd: range.end, limit: limit)
            let spot = found.last?.end ?? range.start.offset
            let damage = damaged ? SegmentScan.resumption(after: Array(files[range.start.segment]![spot..<range.end]), at: spot) : nil
            return state.read(found, from: range, damage: damage, now: now)
        }

        mutating func readAll() -> [Spool.Item] {
            var all: [Spool.Item] = []
            while case let batch = read().items, !batch.isEmpty { all += batch }
            return all
        }

        var stats: Spool.Stats { state.stats(now: now) }

        mutating func advance(ms: Int64) {
            now.wallMs += ms
            now.monotonicMs += ms
        }
    }

    func payloads(_ items: [Spool.Item]) -> [[UInt8]] { items.map(\.entry.payload) }
    func payloads(_ indices: some Sequence<Int>) -> [[UInt8]] { indices.map { Self.entry($0).payload } }

    // MARK: Appending and the group commit

    @Test func appendsCollectIntoOneGroupCommit() throws {
        var log = Log()
        #expect(log.append(0).effects.flush, "the first append schedules a commit")
        #expect(!log.append(1).effects.flush && !log.append(2).effects.flush, "the next ones join it")
        #expect(log.stats.depth == 3 && !log.state.isCaughtUp)
        let taken = log.state.takeBatch()
        let batch = try #require(taken)
        #expect(batch.records == 3 && batch.completions.count == 3 && !batch.startsNewSegment)
        #expect(log.append(3).effects.flush, "an append while the batch is written schedules the next commit")
        #expect(log.stats.bytes == batch.bytes.count + log.state.takeBatch()!.bytes.count)
        #expect(log.state.takeBatch() == nil)
    }

    @Test func recordsAreStampedWithTheClockOffsetOfTheirBatch() throws {
        var log = Log()
        _ = log.append(0)
        log.now.monotonicMs += 10
        log.now.wallMs += 10 + 60_000  // someone steps the wall clock during the batch
        _ = log.append(1)
        log.commit()
        #expect(log.readAll().map(\.entry.receivedAt) == [Self.opened.wallMs, Self.opened.wallMs + 10],
                "one batch, one offset: the step does not change this run's ages")
        _ = log.append(2)
        let taken = log.state.takeBatch()
        let batch = try #require(taken)
        #expect(batch.startsNewSegment, "records stamped with another offset go to a new segment")
        #expect(batch.clockOffset == log.now.offset)
    }

    @Test func aFullSegmentIsFollowedByANewOne() {
        var log = Log(maxBytes: 32 << 10)  // 4 KiB segments
        #expect(log.state.segmentBytes == 4096)
        for index in 0..<8 { _ = log.append(index, payloadBytes: 500) }
        log.commit()
        #expect(log.state.activeSegment == 2)
        #expect(log.readAll().count == 8 && log.state.isCaughtUp, "read to the end of the old segment: caught up")
        log.startNewSegment()
        #expect(log.state.isCaughtUp && log.state.nextReadRange() == nil, "a reader at the end of a segment stands at the next")
    }

    @Test func anAppendIsRefusedWhileTheSpoolIsClosed() {
        var log = Log()
        _ = log.append(0)
        log.state.close()
        guard case .io("the spool is closed") = log.append(1).refusal else { Issue.record("a closed spool takes appends"); return }
        #expect(log.state.choreDue(now: log.now) == .stop)
        #expect(log.state.takeWriter() == 3 && log.state.takeWriter() == -1)
        #expect(log.state.writeTarget() == .refused("the spool is closed"))
        let batch = log.state.takeBatch()!
        log.state.batchRefused(batch, diskFailure: nil)
        #expect(log.stats.depth == 0)
    }

    // MARK: Reading and acknowledging

    @Test func readsDurableEntriesInOrderOnceEach() {
        var log = Log()
        for index in 0..<5 { _ = log.append(index) }
        #expect(log.read().items.isEmpty, "nothing is read before it is durable")
        log.commit()
        let items = log.read(limit: 3).items + log.read(limit: 3).items
        #expect(payloads(items) == payloads(0..<5) && items.map(\.ticket) == [0, 1, 2, 3, 4])
        #expect(items.allSatisfy { !$0.expired })
        #expect(log.read().items.isEmpty && log.state.isCaughtUp)
    }

    @Test func theCheckpointMovesOverTheAcknowledgedPrefixOnly() throws {
        var log = Log()
        for index in 0..<3 { _ = log.append(index) }
        log.commit()
        let items = log.readAll()
        #expect(!log.state.acknowledge(items[1].ticket, expired: false, now: log.now).saveCheckpoint, "a gap: it stays")
        #expect(log.stats.depth == 3)
        #expect(log.state.acknowledge(items[0].ticket, expired: false, now: log.now).saveCheckpoint)
        #expect(log.stats.depth == 1)
        #expect(!log.state.acknowledge(items[2].ticket, expired: false, now: log.now).saveCheckpoint, "a save is pending already")
        #expect(log.state.isEmpty)
        let end = try #require(log.files[1]?.count)
        #expect(log.state.checkpointToSave() == SpoolFiles.Position(segment: 1, offset: end))
    }

    @Test func finishedSegmentsAreDeletedOnceAllTheirEntriesAreAcknowledged() {
        var log = Log(maxBytes: 32 << 10)  // 4 KiB segments: 8 of these entries each
        for chunk in 0..<5 {
            for index in 0..<4 { _ = log.append(chunk * 4 + index, payloadBytes: 500) }
            log.commit()
        }
        #expect(log.state.activeSegment == 3)
        let items = log.readAll()
        #expect(items.count == 20)
        var deleted: [UInt64] = []
        for item in items { deleted += log.state.acknowledge(item.ticket, expired: false, now: log.now).deleteSegments }
        #expect(deleted == [1, 2] && log.state.isEmpty, "the active segment stays")
    }

    /// A record the disk damaged while the gateway runs costs that record only: reading goes on at the next good
    /// one, as recovery at start does. (It went on at the end of the range: every record after the spot was lost.)
    @Test func aDamagedSpotCountsOnlyItsOwnEntriesAsDropped() {
        var log = Log()
        for index in 0..<6 { _ = log.append(index) }
        log.commit()
        let recordSize = log.files[1]!.count / 6
        log.files[1]![recordSize * 2] ^= 0xFF  // the third record's magic
        log.files[1]![recordSize * 4 + recordSize / 2] ^= 0xFF  // the fifth record's body
        let first = log.read()
        #expect(payloads(first.items) == payloads(0..<2))
        // Both spots are counted at the first, where the rest of the range was scanned.
        #expect(first.lostToDamage?.count == 2 && first.lostToDamage?.offset == recordSize * 2)
        #expect(payloads(log.readAll()) == payloads([3, 5]))
        #expect(log.stats.dropped == 2 && log.stats.depth == 4 && log.state.isCaughtUp)
    }

    // MARK: A full spool and a refusing disk

    @Test func aFullSpoolRefusesWhenItMayNotDrop() {
        var log = Log(maxBytes: 64 << 10)
        var accepted = 0
        while log.append(accepted, payloadBytes: 1000).refusal == nil {
            accepted += 1
            if accepted % 5 == 0 { log.commit() }
        }
        guard case .full = log.append(0, payloadBytes: 1000).refusal else { Issue.record("not refused as full"); return }
        #expect(accepted > 50 && accepted < 66 && log.stats.depth == accepted && log.stats.dropped == 0)
    }

    @Test func aFullSpoolDropsItsOldestSegmentsWhenAllowed() {
        var log = Log(maxBytes: 64 << 10, dropOldest: true)
        var deleted: [UInt64] = []
        var droppedToFit = 0
        for index in 0..<200 {
            let appended = log.append(index, payloadBytes: 1000)
            #expect(appended.refusal == nil)
            deleted += appended.effects.deleteSegments
            droppedToFit += appended.effects.droppedToFit
            if index % 5 == 4 { log.commit() }
        }
        #expect(!deleted.isEmpty && deleted == (0..<deleted.count).map { UInt64($0 + 1) }, "oldest first")
        #expect(droppedToFit == log.stats.dropped)
        #expect(log.stats.dropped > 0 && log.stats.depth + log.stats.dropped == 200 && log.stats.bytes <= 64 << 10)
        let kept = log.readAll().map { Int($0.entry.payload[0]) }
        #expect(kept == Array((200 - kept.count)..<200), "the newest entries are kept, in order")
    }

    @Test func aFailedWriteRefusesAppendsUntilATestWriteWorks() throws {
        var log = Log()
        _ = log.append(0)
        let taken = log.state.takeBatch()
        let batch = try #require(taken)
        log.state.batchRefused(batch, diskFailure: "no space left")
        #expect(log.stats.depth == 0 && log.stats.problem == "no space left")
        guard case .io("no space left") = log.append(1).refusal else { Issue.record("appended to a failing disk"); return }
        #expect(log.state.choreDue(now: log.now) == .tidy(probeFirst: false))
        log.advance(ms: 2_000)
        #expect(log.state.choreDue(now: log.now) == .tidy(probeFirst: true))
        let probe = log.state.probeStarted(now: log.now)
        #expect(probe.wasFailing && probe.writer == 3 && probe.durableEnd == 0)
        log.state.probeEnded(failure: "still no space")
        #expect(log.stats.problem == "still no space" && log.state.choreDue(now: log.now) == .tidy(probeFirst: false))
        log.advance(ms: 2_000)
        _ = log.state.probeStarted(now: log.now)
        log.state.probeEnded(failure: nil)
        #expect(log.stats.problem == nil && log.append(2).refusal == nil)
    }

    @Test func aBatchCollectedBeforeAWriteFailedIsRefusedToo() throws {
        var log = Log()
        _ = log.append(0)
        let taken = log.state.takeBatch()
        let batch = try #require(taken)
        log.state.probeEnded(failure: "I/O error")
        #expect(log.state.writeTarget() == .refused("I/O error"))
        log.state.batchRefused(batch, diskFailure: nil)
        #expect(log.stats.depth == 0)
    }

    @Test func aDiskThatFilledUpGetsAFreshSegmentOnceEverythingIsPublished() {
        var log = Log()
        _ = log.append(0)
        log.commit()
        #expect(!log.state.wantsNewSegmentToFreeSpace)
        let item = log.readAll()[0]
        _ = log.state.acknowledge(item.ticket, expired: false, now: log.now)
        #expect(log.state.wantsNewSegmentToFreeSpace)
        log.startNewSegment()
        #expect(log.state.advanceCheckpoint().deleteSegments == [1])
    }

    @Test func aSpoolThatCannotOpenRefusesAppendsAndRetriesEveryFiveSeconds() throws {
        var state = SpoolState(limits: .init(maxBytes: 1 << 20, maxAgeMs: 86_400_000, dropOldest: false))
        #expect(state.problem == "the spool could not be opened: not tried yet")
        #expect(state.takeBatch() == nil && state.isCaughtUp, "a spool that never opened can still be shut down")
        let first = state.openFailed("EIO", now: Self.opened)
        let second = state.openFailed("EIO", now: Self.opened)
        #expect(first && !second, "only the first failure is logged")
        let refused = state.append(Self.entry(0), published: false, completion: { _ in }, now: Self.opened).refusal
        guard case .io("the spool could not be opened: EIO") = refused else { Issue.record("appended while off"); return }
        var later = Self.opened
        later.monotonicMs += 4_999
        #expect(state.choreDue(now: later) == .wait)
        later.monotonicMs += 1
        #expect(state.choreDue(now: later) == .open)
        let earlier = SegmentInfo(number: 7, bytes: 100, records: 2, oldestTs: 1, newestTs: 2)
        let fresh = SegmentInfo(number: 8, bytes: 0, records: 0, oldestTs: 0, newestTs: 0)
        let (wasOff, depth) = state.opened(segments: [earlier, fresh], writer: 3, now: later)
        #expect(wasOff && depth == 2 && state.problem == nil && !state.isCaughtUp)
        #expect(state.nextReadRange() == SpoolState.ReadRange(start: .init(segment: 7, offset: 0), end: 100, records: 2))
    }

    // MARK: Ages

    @Test func entriesOlderThanMaxAgeAreMarkedWhenRead() {
        var log = Log(maxAgeMs: 60_000)
        for index in 0..<3 { _ = log.append(index) }
        log.commit()
        log.advance(ms: 60_001)
        let items = log.readAll()
        #expect(items.count == 3 && items.allSatisfy(\.expired))
        for item in items { _ = log.state.acknowledge(item.ticket, expired: true, now: log.now) }
        #expect(log.stats.expired == 3 && log.state.isEmpty)
    }

    @Test func segmentsOlderThanMaxAgeAreDroppedByHousekeeping() {
        var log = Log(maxAgeMs: 60_000)
        for index in 0..<3 { _ = log.append(index) }
        log.commit()
        log.startNewSegment()
        log.advance(ms: 30_000)
        for index in 3..<5 { _ = log.append(index) }
        log.commit()
        #expect(log.stats.oldestAgeMs == 30_000)
        log.advance(ms: 30_001)
        let effects = log.state.tidy(now: log.now)
        #expect(effects.deleteSegments == [1] && effects.expiredByAge == 3)
        #expect(log.stats.expired == 3 && log.stats.depth == 2 && log.stats.oldestAgeMs == 30_001)
        #expect(payloads(log.readAll()) == payloads(3..<5), "the reader skips to what is left")
    }

    // MARK: The embedded broker's unsaved window

    @Test func writtenAheadEntriesAreSkippedAndKeptForTheUnsavedWindow() {
        var log = Log(keepAcknowledgedMs: 10_000)
        let tickets = log.appendPublished(0..<3)
        #expect(tickets == [0, 1, 2])
        log.commit()
        #expect(log.read().items.isEmpty && log.state.isCaughtUp, "published by their appender: the reader skips them")
        for ticket in tickets { #expect(!log.state.acknowledge(ticket!, expired: false, now: log.now).saveCheckpoint) }
        log.advance(ms: 9_999)
        #expect(!log.state.tidy(now: log.now).saveCheckpoint && log.stats.depth == 3, "kept for the broker's unsaved window")
        log.advance(ms: 1)
        #expect(log.state.tidy(now: log.now).saveCheckpoint && log.state.isEmpty)
    }

    /// The acknowledgements of written-ahead entries whose batch the disk refused, made before the refusal or after
    /// it, are not held for good: those entries never were in the log.
    @Test(arguments: [0, 10_000] as [Int64])
    func acknowledgementsOfARefusedBatchAreNotHeld(keepAcknowledgedMs: Int64) throws {
        var log = Log(keepAcknowledgedMs: keepAcknowledgedMs)
        let tickets = log.appendPublished(0..<2).map { $0! }
        _ = log.state.acknowledge(tickets[0], expired: false, now: log.now)  // its PUBACK came before the write
        let taken = log.state.takeBatch()
        let batch = try #require(taken)
        log.state.batchRefused(batch, diskFailure: "no space left")
        _ = log.state.acknowledge(tickets[1], expired: false, now: log.now)
        log.advance(ms: keepAcknowledgedMs)
        _ = log.state.tidy(now: log.now)
        #expect(log.state.acknowledgementsHeld == 0)
        #expect(log.state.isEmpty)
    }

    @Test func onlyLeadingWrittenAheadRecordsOfABatchAreSkipped() {
        var log = Log()
        _ = log.append(0)
        #expect(log.append(1, published: true).ticket == nil, "behind an entry to be read, it is read too")
        log.commit()
        #expect(payloads(log.readAll()) == payloads(0..<2))
    }

    @Test func aRewindReadsEverythingStillInTheLogAgainAndVoidsOldTickets() {
        var log = Log(keepAcknowledgedMs: 10_000)
        let tickets = log.appendPublished(0..<3).map { $0! }
        log.commit()
        _ = log.state.acknowledge(tickets[0], expired: false, now: log.now)
        log.state.rewind()
        #expect(!log.state.isCurrent(tickets[0]) && !log.state.isCaughtUp)
        let again = log.readAll()
        #expect(payloads(again) == payloads(0..<3) && again.allSatisfy { log.state.isCurrent($0.ticket) })
        _ = log.state.acknowledge(tickets[1], expired: false, now: log.now)  // a late PUBACK from before the rewind
        for item in again { _ = log.state.acknowledge(item.ticket, expired: false, now: log.now) }
        log.advance(ms: 10_000)
        _ = log.state.tidy(now: log.now)
        #expect(log.state.isEmpty)
    }

    @Test func writtenAheadEntriesAreReadAfterARewindBeforeTheirCommit() {
        var log = Log(keepAcknowledgedMs: 10_000)
        _ = log.appendPublished(0..<2)
        log.state.rewind()
        log.commit()
        #expect(payloads(log.readAll()) == payloads(0..<2), "published again: a duplicate, never a loss")
    }

    @Test func theBrokerSavingEverythingLetsKeptEntriesGoAtOnce() {
        var log = Log(keepAcknowledgedMs: 10_000)
        for ticket in log.appendPublished(0..<3) {
            log.commit()
            _ = log.state.acknowledge(ticket!, expired: false, now: log.now)
        }
        #expect(log.stats.depth == 3)
        let effects = log.state.brokerSavedAll()
        #expect(!effects.saveCheckpoint, "the caller saves it at once")
        #expect(log.state.isEmpty && log.state.checkpointToSave() == SpoolFiles.Position(segment: 1, offset: log.files[1]!.count))
    }
}
