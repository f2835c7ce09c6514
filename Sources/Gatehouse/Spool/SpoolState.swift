import NIOCore

/// Every decision of the spool, with no I/O and no locks: whether an append fits (or which segments go to
/// make room), what the next group commit writes, where the reader stands and which ticket an entry gets,
/// how far the checkpoint moves and which segments are finished, what is kept for the embedded broker and
/// what `max_age` expires, whether the spool is open and takes writes. `Spool` keeps it behind its lock and
/// does the file I/O the returned values ask for after releasing it.
///
/// An entry's way through it: `append` adds its record to the collecting batch; `takeBatch` hands the
/// batch to the group commit, which writes and syncs it and reports `batchWritten` (or `batchRefused`);
/// `nextReadRange` and `read` hand durable entries out with tickets; `acknowledge` (with
/// `keepAcknowledgedMs`, after `tidy` lets the entry go) moves the checkpoint over the acknowledged prefix,
/// and a segment whose entries all are acknowledged is deleted.
struct SpoolState {
    typealias Ticket = Spool.Ticket
    typealias Position = SpoolFiles.Position

    private struct UnackedEntry {
        var ticket: Ticket
        var segment: UInt64
        var end: Int
        var ts: Int64
    }

    let limits: Spool.Limits
    /// A segment this big is finished and the next one started, so acknowledged ones can be deleted.
    let segmentBytes: Int

    private var segments: [SegmentInfo] = []
    /// The active segment's file descriptor, -1 when there is none (off, shut down).
    private var writer: Int32 = -1
    private var pending: [UInt8] = []
    private var pendingCompletions: [Spool.Completion] = []
    private var pendingRecords = 0
    private var pendingNewest: Int64 = 0
    private var pendingOffset: Int64 = 0
    private var pendingPublished: [PublishedRecord] = []
    private var flushScheduled = false
    private var flushingBytes = 0
    private var flushingRecords = 0
    private var read = Position(segment: 0, offset: 0)
    private var nextTicket: Ticket = 0
    /// Tickets below this were handed out before the last `rewind()`: acknowledging them changes nothing.
    private var firstValidTicket: Ticket = 0
    private var unacked = CircularBuffer<UnackedEntry>()
    private var acknowledged = Set<Ticket>()
    /// Written-ahead tickets of batches the disk refused, not acknowledged yet: their entries are not in the log, so
    /// their acknowledgement changes nothing (in `acknowledged`, it would wait there for good). Emptied by `rewind()`.
    private var refusedTickets = Set<Ticket>()
    /// Acknowledged by the broker, kept until the monotonic time given (`keepAcknowledgedMs`), oldest first.
    private var kept = CircularBuffer<(ticket: Ticket, untilMs: Int64)>()
    private var checkpoint = Position(segment: 0, offset: 0)
    private var checkpointScheduled = false
    private var depth = 0
    private var dropped = 0
    private var expired = 0
    /// Open: the segments are known and a writer exists. Until then appends are refused.
    private var isOpen = false
    /// Why the last attempt to open failed.
    private var openFailure: String?
    /// Why the last write failed; appends are refused until a test write succeeds.
    private var writeFailure: String?
    private var lastAttemptMs: Int64 = 0
    private var closed = false
    /// Both clocks when the spool opened: the base for an earlier run's entries (`SpoolAge`).
    private var opened = SpoolClockReading(wallMs: 0, monotonicMs: 0)

    init(limits: Spool.Limits) {
        self.limits = limits
        self.segmentBytes = min(max(limits.maxBytes / 8, 4096), 16 << 20)
    }

    private var active: SegmentInfo { segments[segments.count - 1] }
    private var bytes: Int { segments.reduce(0) { $0 + $1.bytes } + pending.count + flushingBytes }

    /// Why appends are refused now; nil when the spool takes them.
    var problem: String? { isOpen ? writeFailure : "the spool could not be opened: \(openFailure ?? "not tried yet")" }

    // MARK: Opening and the disk

    /// The log could not be opened; true for the first failure (worth an error in the log).
    mutating func openFailed(_ reason: String, now: SpoolClockReading) -> Bool {
        defer {
            openFailure = reason
            lastAttemptMs = now.monotonicMs
        }
        return openFailure == nil
    }

    /// The log is open: `segments` as recovered, the last one new and empty, appended to through `writer`.
    /// Returns whether the spool had been off, and how many entries earlier runs left.
    mutating func opened(segments: [SegmentInfo], writer: Int32, now: SpoolClockReading, boot: String = "") -> (wasOff: Bool, depth: Int) {
        let start = Position(segment: segments[0].number, offset: segments[0].start)
        self.segments = segments
        shiftEarlierStamps(boot: boot, now: now)
        self.segments[segments.count - 1].clockOffset = now.offset
        self.writer = writer
        read = start
        checkpoint = start
        depth = segments.reduce(0) { $0 + $1.records }
        opened = now
        isOpen = true
        lastAttemptMs = now.monotonicMs
        return (openFailure != nil, depth)
    }

    /// Everything was published since the disk filled up: a new (empty) segment lets the old one be deleted,
    /// which frees the space this spool itself took.
    var wantsNewSegmentToFreeSpace: Bool {
        depth == 0 && pendingRecords == 0 && active.bytes > 0 && read.offset == active.bytes
    }

    /// A test write begins (at open, and every 2 s after a failed write).
    mutating func probeStarted(now: SpoolClockReading) -> Probe {
        lastAttemptMs = now.monotonicMs
        return Probe(writer: writer, segment: active.number, durableEnd: active.bytes, checkpoint: checkpoint, wasFailing: writeFailure != nil)
    }

    /// The test write failed (`reason`) or worked (nil): appends stay refused, or are taken again.
    mutating func probeEnded(failure reason: String?) {
        writeFailure = reason
    }

    // MARK: Appending and the group commit

    /// Adds `entry` to the collecting batch, stamped now with the batch's clock offset, unless the spool is off,
    /// failing, closed or full (`when_full: drop_oldest` first drops whole segments, oldest first, to make room).
    /// `published`: its appender publishes it itself (see `Spool.appendPublished`).
    mutating func append(
        _ entry: SpoolEntry, published: Bool, completion: @escaping Spool.Completion, now: SpoolClockReading
    ) -> Appended {
        if let problem { return Appended(refusal: .io(problem)) }
        if closed { return Appended(refusal: .io("the spool is closed")) }
        if pendingRecords == 0 { pendingOffset = now.offset }
        // Stamped here, with the batch's clock offset, so that every record of a segment has one offset.
        var stamped = entry
        stamped.receivedAt = now.monotonicMs &+ pendingOffset
        var record: [UInt8] = []
        SpoolRecord.encode(stamped, into: &record)
        var appended = Appended()
        if bytes + record.count > limits.maxBytes {
            if limits.dropOldest { dropOldest(toFit: record.count, &appended.effects) }
            if bytes + record.count > limits.maxBytes {
                appended.refusal = .full
                return appended
            }
        }
        if published, pendingPublished.count == pendingRecords {
            appended.ticket = nextTicket
            pendingPublished.append(PublishedRecord(ticket: nextTicket, size: record.count, ts: stamped.receivedAt))
            nextTicket += 1
        }
        pending.append(contentsOf: record)
        pendingCompletions.append(completion)
        pendingRecords += 1
        pendingNewest = max(pendingNewest, stamped.receivedAt)
        depth += 1
        appended.effects.flush = !flushScheduled
        flushScheduled = true
        return appended
    }

    /// Takes the collecting batch for the group commit (nil when it is empty); appends after this go into
    /// the next batch.
    mutating func takeBatch() -> Batch? {
        defer {
            pending = []
            pendingCompletions = []
            pendingRecords = 0
            pendingNewest = 0
            pendingPublished = []
            flushScheduled = false
        }
        guard pendingRecords > 0 else { return nil }
        flushingBytes = pending.count
        flushingRecords = pendingRecords
        let startsNewSegment = active.records > 0 && abs((active.clockOffset ?? 0) &- pendingOffset) > 1000
        return Batch(
            bytes: pending, completions: pendingCompletions, records: pendingRecords, newestTs: pendingNewest,
            clockOffset: pendingOffset, published: pendingPublished, startsNewSegment: startsNewSegment)
    }

    /// Where the taken batch goes. After a failed write it is refused too: nothing is written behind bytes
    /// that may be torn.
    func writeTarget() -> WriteTarget {
        if writer < 0 { return .refused("the spool is closed") }
        if let writeFailure { return .refused(writeFailure) }
        return .segment(number: active.number, writer: writer, durableEnd: active.bytes)
    }

    /// Moves an earlier run's stamps onto the last wall clock of the boot they were made in: this boot's now, or,
    /// for another boot, the offset of its newest segment (a step of the wall clock started a new segment). So the
    /// records a box stamped with a stale clock before NTP stepped it are not taken for days old after a restart.
    private mutating func shiftEarlierStamps(boot: String, now: SpoolClockReading) {
        var last: [String: Int64] = boot.isEmpty ? [:] : [boot: now.offset]
        for segment in segments.reversed() {
            if let written = segment.written, last[written.boot] == nil { last[written.boot] = written.offset }
        }
        for index in segments.indices {
            guard let written = segments[index].written, let offset = last[written.boot] else { continue }
            segments[index].stampShift = offset.subtractingSaturating(written.offset)
        }
    }

    /// The batch is durable at the end of the active segment. Its written-ahead records count as read when
    /// the reader stands right before them. `startNewSegment`: the active segment is big enough.
    mutating func batchWritten(_ batch: Batch) -> (startNewSegment: Bool, effects: Effects) {
        let last = segments.count - 1
        let batchStart = Position(segment: segments[last].number, offset: segments[last].bytes)
        if segments[last].records == 0 {
            segments[last].oldestTs = batch.newestTs
            segments[last].clockOffset = batch.clockOffset
        }
        segments[last].bytes += batch.bytes.count
        segments[last].records += batch.records
        segments[last].newestTs = max(segments[last].newestTs, batch.newestTs)
        flushingBytes = 0
        flushingRecords = 0
        skipPublished(batch.published, from: batchStart)
        return (segments[last].bytes >= segmentBytes, advanceCheckpoint())
    }

    /// The batch was not written: its entries are not in the log. With `diskFailure` the disk refused it,
    /// and every append is refused until a test write works.
    mutating func batchRefused(_ batch: Batch, diskFailure: String?) {
        if let diskFailure, writeFailure == nil { writeFailure = diskFailure }
        for record in batch.published where record.ticket >= firstValidTicket && acknowledged.remove(record.ticket) == nil {
            refusedTickets.insert(record.ticket)
        }
        depth -= batch.records
        flushingBytes = 0
        flushingRecords = 0
    }

    /// The active segment's number: the next one follows it.
    var activeSegment: UInt64 { active.number }

    /// The segment after `previous` is created and open as `writer`; returns the previous writer, to close.
    mutating func segmentStarted(after previous: UInt64, writer next: Int32) -> Int32 {
        let end = Position(segment: previous, offset: active.bytes)
        segments.append(SegmentInfo(number: previous + 1, bytes: 0, records: 0, oldestTs: 0, newestTs: 0))
        defer { writer = next }
        // A reader at the end of the old segment stands at the start of the new one.
        if read == end { read = Position(segment: previous + 1, offset: 0) }
        return writer
    }

    // MARK: Reading and acknowledging

    /// Where the next read starts and where durable data ends there; moves to the next segment at the end
    /// of a finished one. Nil when everything durable has been read.
    mutating func nextReadRange() -> ReadRange? {
        guard !segments.isEmpty else { return nil }
        while let index = segments.firstIndex(where: { $0.number == read.segment }) {
            let segment = segments[index]
            if read.offset < segment.bytes { return ReadRange(start: read, end: segment.bytes, records: segment.records) }
            guard index + 1 < segments.count else { return nil }
            read = Position(segment: segments[index + 1].number, offset: segments[index + 1].start)
        }
        read = Position(segment: segments[0].number, offset: segments[0].start)
        return nil
    }

    /// The records read from `range`, in order, each with where it ends in its segment; `damage` when they
    /// stop at a spot that holds no good record. Each gets a ticket and is marked when older than `max_age`.
    /// Nothing is handed out when the reader moved meanwhile (a dropped segment, a rewind): read again.
    mutating func read(
        _ found: [(entry: SpoolEntry, end: Int)], from range: ReadRange, damage: Damage?, now: SpoolClockReading
    ) -> ReadResult {
        guard read == range.start, let index = segments.firstIndex(where: { $0.number == range.start.segment }) else {
            return ReadResult()
        }
        let segment = segments[index]
        var result = ReadResult()
        for (entry, recordEnd) in found {
            unacked.append(UnackedEntry(ticket: nextTicket, segment: segment.number, end: recordEnd, ts: entry.receivedAt))
            let age = segment.age(ofStamp: entry.receivedAt, now: now, opened: opened)
            result.items.append(Spool.Item(ticket: nextTicket, entry: entry, expired: age > limits.maxAgeMs))
            nextTicket += 1
        }
        segments[index].read += found.count
        read.offset = found.last?.end ?? range.start.offset
        if let damage {
            // Only the records the spot touched are lost: the intact ones after it are read from `resumeAt` on.
            // Entries made durable after `range` was taken lie beyond it and are read later too.
            let lost = max(0, range.records - segments[index].read - damage.intactAfter)
            if lost > 0 { result.lostToDamage = (lost, read.offset) }  // a later spot of the range was counted already
            segments[index].records -= lost
            depth -= lost
            dropped += lost
            read.offset = damage.resumeAt
        }
        return result
    }

    /// The broker has the entry (or it was `expired`, or refused for good): it leaves the log once all before
    /// it have; an entry the broker confirmed is kept `keepAcknowledgedMs` longer.
    mutating func acknowledge(_ ticket: Ticket, expired: Bool, now: SpoolClockReading) -> Effects {
        guard ticket >= firstValidTicket else { return Effects() }
        if expired { self.expired += 1 }
        if limits.keepAcknowledgedMs > 0, !expired {
            kept.append((ticket, now.monotonicMs &+ limits.keepAcknowledgedMs))
            return Effects()
        }
        release(ticket)
        return advanceCheckpoint()
    }

    /// An acknowledged entry leaves the log once all before it have; one of a batch the disk refused was never in it.
    private mutating func release(_ ticket: Ticket) {
        if refusedTickets.remove(ticket) == nil { acknowledged.insert(ticket) }
    }

    /// Acknowledgements held for entries not yet at the checkpoint, or for entries of refused batches (tests).
    var acknowledgementsHeld: Int { acknowledged.count + refusedTickets.count }

    /// Whether `ticket` still counts: false once a `rewind()` made its entry to be read again.
    func isCurrent(_ ticket: Ticket) -> Bool { ticket >= firstValidTicket }

    /// Every entry still in the log, kept or not yet acknowledged, is to be read again, oldest first;
    /// tickets handed out before are void.
    mutating func rewind() {
        guard isOpen else { return }
        firstValidTicket = nextTicket
        unacked.removeAll()
        acknowledged.removeAll()
        refusedTickets.removeAll()
        kept.removeAll()
        read = max(checkpoint, Position(segment: segments[0].number, offset: segments[0].start))
        for index in segments.indices { segments[index].read = segments[index].committed }
    }

    /// The broker saved everything it acknowledged: the kept entries leave the log. The caller saves the
    /// checkpoint at once (`checkpointToSave`).
    mutating func brokerSavedAll() -> Effects {
        while let kept = kept.popFirst() { release(kept.ticket) }
        var effects = advanceCheckpoint()
        effects.saveCheckpoint = false
        return effects
    }

    /// Moves the checkpoint over the acknowledged prefix and drops segments that are finished (all their
    /// entries acknowledged, the reader past them).
    mutating func advanceCheckpoint() -> Effects {
        var effects = Effects()
        var moved = false
        while let first = unacked.first, acknowledged.remove(first.ticket) != nil {
            unacked.removeFirst()
            moved = true
            checkpoint = Position(segment: first.segment, offset: first.end)
            guard let index = segments.firstIndex(where: { $0.number == first.segment }) else { continue }
            segments[index].committed += 1
            segments[index].oldestTs = first.ts
            depth -= 1
        }
        while segments.count > 1, segments[0].committed == segments[0].records, read.segment > segments[0].number {
            _ = removeFirstSegment(&effects)
        }
        if moved, !checkpointScheduled {
            checkpointScheduled = true
            effects.saveCheckpoint = true
        }
        return effects
    }

    /// The checkpoint to write now (nil while the spool is off); later moves ask for a new save.
    mutating func checkpointToSave() -> Position? {
        checkpointScheduled = false
        return isOpen ? checkpoint : nil
    }

    /// True when every appended entry is durable and has been read: nothing in the log is ahead of a new message.
    var isCaughtUp: Bool {
        segments.isEmpty
            || (pendingRecords == 0 && flushingRecords == 0 && read.segment == active.number && read.offset == active.bytes)
    }

    var isEmpty: Bool { depth == 0 }

    func stats(now: SpoolClockReading) -> Spool.Stats {
        var oldestAgeMs: Int64 = 0
        let oldest = unacked.first.map { ($0.segment, $0.ts) }
            ?? segments.first { $0.records > $0.committed }.map { ($0.number, $0.oldestTs) }
        if depth > 0, let (number, ts) = oldest, let segment = segments.first(where: { $0.number == number }) {
            oldestAgeMs = max(0, segment.age(ofStamp: ts, now: now, opened: opened))
        }
        return Spool.Stats(depth: depth, bytes: bytes, oldestAgeMs: oldestAgeMs, dropped: dropped, expired: expired, problem: problem)
    }

    // MARK: Housekeeping and shutdown

    /// What this second's housekeeping round does.
    func choreDue(now: SpoolClockReading) -> Chore {
        if closed { return .stop }
        let since = now.monotonicMs &- lastAttemptMs
        if !isOpen { return since >= 5_000 ? .open : .wait }
        return .tidy(probeFirst: writeFailure != nil && since >= 2_000)
    }

    /// Lets kept entries go once their time is up, moves the checkpoint, and drops whole segments older than
    /// `max_age` (never the active one).
    mutating func tidy(now: SpoolClockReading) -> Effects {
        while let first = kept.first, first.untilMs <= now.monotonicMs {
            kept.removeFirst()
            release(first.ticket)
        }
        var effects = advanceCheckpoint()
        while segments.count > 1,
              segments[0].age(ofStamp: segments[0].newestTs, now: now, opened: opened) > limits.maxAgeMs {
            effects.expiredByAge += removeFirstSegment(&effects)
        }
        expired += effects.expiredByAge
        return effects
    }

    /// Appends are refused from now on.
    mutating func close() { closed = true }

    /// Takes the writer, to close it (-1 when there is none); nothing is written after.
    mutating func takeWriter() -> Int32 {
        defer { writer = -1 }
        return writer
    }

    // MARK: Internals

    /// Drops whole segments, oldest first, until `size` more bytes fit.
    private mutating func dropOldest(toFit size: Int, _ effects: inout Effects) {
        while bytes + size > limits.maxBytes, segments.count > 1 {
            effects.droppedToFit += removeFirstSegment(&effects)
        }
        dropped += effects.droppedToFit
    }

    /// Drops the oldest segment with whatever it still holds; returns the number of entries lost.
    private mutating func removeFirstSegment(_ effects: inout Effects) -> Int {
        let segment = segments.removeFirst()
        effects.deleteSegments.append(segment.number)
        let lost = segment.records - segment.committed
        depth -= lost
        let next = Position(segment: segments[0].number, offset: segments[0].start)
        if read < next { read = next }
        if checkpoint < next { checkpoint = next }
        return lost
    }

    /// The batch's leading records that their appender publishes itself count as read, with their tickets,
    /// when the reader stands right before them and no `rewind()` came in between; otherwise they are read
    /// and published again (a duplicate, never a loss).
    private mutating func skipPublished(_ published: [PublishedRecord], from start: Position) {
        guard !published.isEmpty, read == start else { return }
        let last = segments.count - 1
        for record in published {
            guard record.ticket >= firstValidTicket else { break }
            read.offset += record.size
            segments[last].read += 1
            unacked.append(UnackedEntry(ticket: record.ticket, segment: start.segment, end: read.offset, ts: record.ts))
        }
    }
}
