import Dispatch
import Foundation
import Glibc
import Logging
import NIOCore
import Synchronization

/// A crash-safe, append-only log of QoS 1 publishes waiting for the broker.
///
/// Appends are group-committed: they collect in memory while the previous batch is being written, and one
/// `fdatasync` makes the whole next batch durable before any of its completions run (so a device is acked
/// only for what is on disk). Entries are read back in append order, and an entry leaves the log only when
/// `acknowledge` says the broker has it (with `keepAcknowledgedMs`, that long after). A segment file is
/// deleted once all its entries are acknowledged; the `checkpoint` file lets a restart skip what was already
/// acknowledged in the oldest segment.
///
/// The disk may refuse: when the spool cannot be opened at start, it is off (appends are refused) and opening
/// is retried every 5 s; when a write fails (a full disk), appends are refused until a test write succeeds
/// (tried every 2 s). Either way the gateway keeps running.
final class Spool: Sendable {
    struct Limits: Sendable {
        var maxBytes: Int
        var maxAgeMs: Int64
        var dropOldest: Bool
        /// How long an entry stays after the broker acknowledged it: the embedded broker's unsaved window
        /// (`rewind()` publishes it again if that broker is lost). 0: it leaves at once.
        var keepAcknowledgedMs: Int64 = 0
    }

    enum AppendError: Error, Sendable {
        /// `spool.max_bytes` reached (and `when_full` is `reject`).
        case full
        /// The disk refused a write, or the spool is off: the entry is not safe.
        case io(String)
    }

    typealias Ticket = UInt64
    typealias Completion = @Sendable (AppendError?) -> Void

    struct Stats: Sendable {
        var depth: Int
        var bytes: Int
        var oldestAgeMs: Int64
        var dropped: Int
        var expired: Int
        /// Why appends are refused now (the spool could not be opened, or the disk refused a write); nil when it
        /// takes messages.
        var problem: String?
    }

    /// One entry read back for publishing.
    struct Item: Sendable {
        var ticket: Ticket
        var entry: SpoolEntry
        /// Older than `spool.max_age` (see `SpoolAge`): acknowledge it with `expired`, do not publish it.
        var expired: Bool
    }

    private let files: SpoolFiles
    private let limits: Limits
    private let segmentBytes: Int
    private let clock: any SpoolClock
    private let logger: Logger
    /// Runs the group commits, segment rolls, checkpoint writes, housekeeping and reopening, one at a time.
    private let queue = DispatchQueue(label: "gatehouse.spool")
    private let state: Mutex<State>
    /// Called on the spool's queue after each group commit: new entries can be read.
    private let durableHook = Mutex<Hook?>(nil)
    /// Called on the spool's queue when a spool that was off opens with entries of an earlier run.
    private let openedHook = Mutex<Hook?>(nil)

    /// A class box for the hook: taking a bare optional closure out of `Mutex.withLock` leaks its context
    /// on every call (seen with Swift 6.3 in `make soak`).
    private final class Hook: Sendable {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }

    /// Sets what runs after each group commit.
    func onDurable(_ run: @escaping @Sendable () -> Void) {
        durableHook.withLock { $0 = Hook(run) }
    }

    /// Sets what runs when a spool that could not be opened at start opens later holding entries.
    func onOpenedWithEntries(_ run: @escaping @Sendable () -> Void) {
        openedHook.withLock { $0 = Hook(run) }
    }

    private struct UnackedEntry {
        var ticket: Ticket
        var segment: UInt64
        var end: Int
        var ts: Int64
    }

    /// A record its appender publishes itself (`appendPublished`): the reader skips it once it is durable.
    private struct PublishedRecord {
        var ticket: Ticket
        var size: Int
        var ts: Int64
    }

    private struct State {
        var segments: [SegmentInfo] = []
        var writer: Int32 = -1
        var pending: [UInt8] = []
        var pendingCompletions: [Completion] = []
        var pendingRecords = 0
        var pendingNewest: Int64 = 0
        /// The clock offset every record of the collecting batch is stamped with (a batch is one segment's).
        var pendingOffset: Int64 = 0
        /// The leading records of the collecting batch that were appended with `appendPublished`.
        var pendingPublished: [PublishedRecord] = []
        var flushScheduled = false
        var flushingBytes = 0
        var flushingRecords = 0
        var read = SpoolFiles.Position(segment: 0, offset: 0)
        var nextTicket: Ticket = 0
        /// Tickets below this were handed out before the last `rewind()`: acknowledging them changes nothing.
        var firstValidTicket: Ticket = 0
        var unacked = CircularBuffer<UnackedEntry>()
        var acknowledged = Set<Ticket>()
        /// Acknowledged by the broker, kept until the monotonic time given (`keepAcknowledgedMs`), oldest first.
        var kept = CircularBuffer<(ticket: Ticket, untilMs: Int64)>()
        var checkpoint = SpoolFiles.Position(segment: 0, offset: 0)
        var checkpointScheduled = false
        var depth = 0
        var dropped = 0
        var expired = 0
        /// Open: the segments are known and a writer exists. Until then appends are refused.
        var isOpen = false
        /// Why the last attempt to open failed.
        var openFailure: String?
        /// Why the last write failed; appends are refused until a test write succeeds.
        var writeFailure: String?
        var lastAttemptMs: Int64 = 0
        var closed = false
        /// Both clocks when the spool opened: the base for an earlier run's entries (`SpoolAge`).
        var opened = SpoolClockReading(wallMs: 0, monotonicMs: 0)

        var active: SegmentInfo { segments[segments.count - 1] }
        var bytes: Int { segments.reduce(0) { $0 + $1.bytes } + pending.count + flushingBytes }
        var problem: String? { isOpen ? writeFailure : "the spool could not be opened: \(openFailure ?? "not tried yet")" }
    }

    /// Opens the spool in `dir`, recovering what a previous run left (see `SpoolFiles.recover`), and starts
    /// a new segment for this run's appends. A disk that refuses (full, failing) does not make it fail: the
    /// spool is then off (logged, and in `stats().problem`) and is opened again later.
    ///
    /// - Throws: `SpoolFiles.IOError` when `dir` is misconfigured (not a directory, not ours to use).
    init(dir: String, limits: Limits, clock: any SpoolClock = SystemSpoolClock(), logger: Logger) throws(SpoolFiles.IOError) {
        self.files = SpoolFiles(dir: dir)
        self.limits = limits
        self.segmentBytes = min(max(limits.maxBytes / 8, 4096), 16 << 20)
        self.clock = clock
        self.logger = logger
        self.state = Mutex(State())
        try open(atStart: true)
        scheduleHousekeeping()
    }

    /// Opens the log (at start, then every 5 s while it is off); the first durable checkpoint write tells
    /// whether the disk takes writes. Throws only a misconfiguration at start.
    private func open(atStart: Bool = false) throws(SpoolFiles.IOError) {
        let now = clock.now()
        let opened: (segments: [SegmentInfo], writer: Int32)
        do {
            opened = try files.openLog(logger: logger)
        } catch {
            if atStart, error.isMisconfiguration { throw error }
            let first = state.withLock { state in
                defer {
                    state.openFailure = "\(error)"
                    state.lastAttemptMs = now.monotonicMs
                }
                return state.openFailure == nil
            }
            if first {
                logger.error("the spool is off: \(error). The gateway runs on; while the broker is unreachable, messages that must be safe are refused (nack broker_unavailable). Trying again every 5 s", metadata: ["spool.dir": "\(files.dir)"])
            }
            return
        }
        let segments = opened.segments
        let start = SpoolFiles.Position(segment: segments[0].number, offset: segments[0].start)
        let depth = segments.reduce(0) { $0 + $1.records }
        let wasOff = state.withLock { state in
            let wasOff = state.openFailure != nil
            state.segments = segments
            state.segments[segments.count - 1].clockOffset = now.offset
            state.writer = opened.writer
            state.read = start
            state.checkpoint = start
            state.depth = depth
            state.opened = now
            state.isOpen = true
            state.lastAttemptMs = now.monotonicMs
            return wasOff
        }
        if wasOff { logger.notice("the spool is open again", metadata: ["spool.dir": "\(files.dir)"]) }
        if depth > 0 {
            logger.notice("spool holds \(depth) entries from the previous run; they are published once the broker is reachable", metadata: ["spool.dir": "\(files.dir)"])
        }
        probeWriting()
        if wasOff, depth > 0 { openedHook.withLock { $0 }?.run() }
    }

    /// Cuts the active segment back to its durable end and saves the checkpoint durably: when both work the
    /// disk takes writes again. At open and every 2 s after a failed write.
    private func probeWriting() {
        // Everything was published since the disk filled up: a new (empty) segment lets the old one be deleted,
        // which frees the space this spool itself took.
        if state.withLock({ $0.depth == 0 && $0.pendingRecords == 0 && $0.active.bytes > 0 && $0.read.offset == $0.active.bytes }) {
            rollSegment()
            if state.withLock({ advanceCheckpoint(&$0) }) { scheduleCheckpoint() }
        }
        let (writer, active, position, failure) = state.withLock { state in
            state.lastAttemptMs = clock.now().monotonicMs
            return (state.writer, state.active, state.checkpoint, state.writeFailure)
        }
        do {
            if writer >= 0, ftruncate(writer, off_t(active.bytes)) != 0 {
                throw SpoolFiles.IOError("truncate", files.segmentPath(active.number))
            }
            try files.writeCheckpoint(position, durable: true)
        } catch {
            state.withLock { $0.writeFailure = "the spool cannot be written: \(error)" }
            if failure == nil {
                logger.error("the spool cannot be written (disk full?): \(error). While the broker is unreachable, messages that must be safe are refused (nack broker_unavailable). Trying again every 2 s", metadata: ["spool.dir": "\(files.dir)"])
            }
            return
        }
        state.withLock { $0.writeFailure = nil }
        if failure != nil { logger.notice("the spool can be written again", metadata: ["spool.dir": "\(files.dir)"]) }
    }

    // MARK: Appending

    /// Queues `entry` for the next group commit; `completion` runs on the spool's queue once it is durable
    /// (nil) or could not be written. Throws `.full` at once when `max_bytes` leaves no room, `.io` while the
    /// spool is off or the disk refuses writes.
    func append(_ entry: SpoolEntry, completion: @escaping Completion) throws(AppendError) {
        _ = try add(entry, published: false, completion: completion)
    }

    /// Like `append`, for an entry the caller publishes itself while the reader has caught up (write-ahead):
    /// the reader skips it, and the caller acknowledges it with the returned ticket on its PUBACK. After a
    /// `rewind()` it is read and published again like any other entry. Nil: it will be read like any other.
    func appendPublished(_ entry: SpoolEntry, completion: @escaping Completion) throws(AppendError) -> Ticket? {
        try add(entry, published: true, completion: completion)
    }

    private func add(_ entry: SpoolEntry, published: Bool, completion: @escaping Completion) throws(AppendError) -> Ticket? {
        let now = clock.now()
        let (scheduleFlush, dropped, ticket) = try state.withLock { state throws(AppendError) -> (Bool, Int, Ticket?) in
            if let problem = state.problem { throw .io(problem) }
            if state.closed { throw .io("the spool is closed") }
            if state.pendingRecords == 0 { state.pendingOffset = now.offset }
            // Stamped here, with the batch's clock offset, so that every record of a segment has one offset.
            var stamped = entry
            stamped.receivedAt = now.monotonicMs &+ state.pendingOffset
            var record: [UInt8] = []
            SpoolRecord.encode(stamped, into: &record)
            var dropped = 0
            if state.bytes + record.count > limits.maxBytes {
                if limits.dropOldest { dropped = dropOldest(&state, toFit: record.count) }
                if state.bytes + record.count > limits.maxBytes { throw .full }
            }
            var ticket: Ticket?
            if published, state.pendingPublished.count == state.pendingRecords {
                ticket = state.nextTicket
                state.nextTicket += 1
                state.pendingPublished.append(PublishedRecord(ticket: ticket!, size: record.count, ts: stamped.receivedAt))
            }
            state.pending.append(contentsOf: record)
            state.pendingCompletions.append(completion)
            state.pendingRecords += 1
            state.pendingNewest = max(state.pendingNewest, stamped.receivedAt)
            state.depth += 1
            defer { state.flushScheduled = true }
            return (!state.flushScheduled, dropped, ticket)
        }
        if dropped > 0 { logger.warning("spool full: dropped the \(dropped) oldest entries (spool.when_full: drop_oldest)") }
        if scheduleFlush { queue.async { self.flush() } }
        return ticket
    }

    /// Drops whole segments, oldest first, until `size` more bytes fit; returns how many entries went.
    private func dropOldest(_ state: inout State, toFit size: Int) -> Int {
        var dropped = 0
        while state.bytes + size > limits.maxBytes, state.segments.count > 1 {
            dropped += removeFirstSegment(&state)
        }
        state.dropped += dropped
        return dropped
    }

    /// Deletes the oldest segment with whatever it still holds; returns the number of entries lost.
    private func removeFirstSegment(_ state: inout State) -> Int {
        let segment = state.segments.removeFirst()
        // Unlinked on the spool's queue: no file I/O under the lock (appends run under the outbox's lock too).
        queue.async { [files] in files.remove(segment.number) }
        let lost = segment.records - segment.committed
        state.depth -= lost
        let next = SpoolFiles.Position(segment: state.segments[0].number, offset: state.segments[0].start)
        if state.read < next { state.read = next }
        if state.checkpoint < next { state.checkpoint = next }
        return lost
    }

    /// One group commit: writes everything appended since the last one with a single sync, then runs
    /// their completions. Runs on `queue`.
    private func flush() {
        let (batch, completions, records, newest, offset, published, rollFirst) = state.withLock { state in
            defer {
                state.pending = []
                state.pendingCompletions = []
                state.pendingRecords = 0
                state.pendingNewest = 0
                state.pendingPublished = []
                state.flushScheduled = false
            }
            state.flushingBytes = state.pending.count
            state.flushingRecords = state.pendingRecords
            let active = state.active
            // The wall clock was stepped since the active segment's records were stamped: a new segment.
            let rollFirst = active.records > 0 && abs((active.clockOffset ?? 0) &- state.pendingOffset) > 1000
            return (state.pending, state.pendingCompletions, state.pendingRecords, state.pendingNewest, state.pendingOffset,
                    state.pendingPublished, rollFirst)
        }
        guard !batch.isEmpty else { return }
        if rollFirst { rollSegment() }
        let (writer, number, durableEnd, failure) = state.withLock { ($0.writer, $0.active.number, $0.active.bytes, $0.writeFailure) }
        // A batch collected before a write failed is refused too: nothing is written behind bytes that may be torn.
        if let refusal = writer < 0 ? "the spool is closed" : failure {
            refuse(records, completions, refusal)
            return
        }
        do {
            try files.appendDurably(writer, batch, path: files.segmentPath(number))
        } catch {
            // The disk refused (e.g. it is full): these messages are refused, and so is every new one until a
            // test write works (`probeWriting`, which also cuts the file back to its durable end again).
            logger.error("spool write failed; \(records) messages refused: \(error)")
            _ = ftruncate(writer, off_t(durableEnd))
            state.withLock { state in
                if state.writeFailure == nil { state.writeFailure = "the spool cannot be written: \(error)" }
            }
            refuse(records, completions, "\(error)")
            return
        }
        let (roll, checkpointMoved) = state.withLock { state in
            let last = state.segments.count - 1
            let batchStart = SpoolFiles.Position(segment: state.segments[last].number, offset: state.segments[last].bytes)
            if state.segments[last].records == 0 {
                state.segments[last].oldestTs = newest
                state.segments[last].clockOffset = offset
            }
            state.segments[last].bytes += batch.count
            state.segments[last].records += records
            state.segments[last].newestTs = max(state.segments[last].newestTs, newest)
            state.flushingBytes = 0
            state.flushingRecords = 0
            skipPublished(published, from: batchStart, &state)
            return (state.segments[last].bytes >= segmentBytes, advanceCheckpoint(&state))
        }
        // Rolled before the completions run: whoever sees an entry acked also sees the segment it lies in closed.
        if roll { rollSegment() }
        if checkpointMoved { scheduleCheckpoint() }
        for completion in completions { completion(nil) }
        durableHook.withLock { $0 }?.run()
    }

    /// A batch that was not written: its entries are not in the log, and their appenders hear why.
    private func refuse(_ records: Int, _ completions: [Completion], _ reason: String) {
        state.withLock { state in
            state.depth -= records
            state.flushingBytes = 0
            state.flushingRecords = 0
        }
        for completion in completions { completion(.io(reason)) }
    }

    /// The batch's leading records that their appender publishes itself count as read, with their tickets,
    /// when the reader stands right before them and no `rewind()` came in between; otherwise they are read
    /// and published again (a duplicate, never a loss).
    private func skipPublished(_ published: [PublishedRecord], from start: SpoolFiles.Position, _ state: inout State) {
        guard !published.isEmpty, state.read == start else { return }
        let last = state.segments.count - 1
        for record in published {
            guard record.ticket >= state.firstValidTicket else { break }
            state.read.offset += record.size
            state.segments[last].read += 1
            state.unacked.append(UnackedEntry(ticket: record.ticket, segment: start.segment, end: state.read.offset, ts: record.ts))
        }
    }

    /// Starts the next segment (the active one is big enough, or the wall clock was stepped), so acknowledged
    /// segments can be deleted and each segment has one clock offset.
    private func rollSegment() {
        let (number, writer) = state.withLock { ($0.active.number, $0.writer) }
        do {
            let next = try files.create(number + 1)
            state.withLock { state in
                let end = SpoolFiles.Position(segment: number, offset: state.active.bytes)
                state.segments.append(SegmentInfo(number: number + 1, bytes: 0, records: 0, oldestTs: 0, newestTs: 0))
                state.writer = next
                // A reader at the end of the old segment stands at the start of the new one.
                if state.read == end { state.read = SpoolFiles.Position(segment: number + 1, offset: 0) }
            }
            Glibc.close(writer)
        } catch {
            logger.error("cannot start a new spool segment; still appending to the current one: \(error)")
        }
    }

    // MARK: Reading and acknowledging

    /// Up to `limit` durable entries not read yet, in append order, each with the ticket to acknowledge it by.
    /// Called from one replay loop at a time.
    func read(limit: Int) -> [Item] {
        guard limit > 0 else { return [] }
        guard let (position, end, recordsUpToEnd) = nextReadRange() else { return [] }
        let path = files.segmentPath(position.segment)
        var bytes: [UInt8]
        do {
            bytes = try files.read(path, offset: position.offset, count: min(end - position.offset, 1 << 20))
            // A record bigger than one chunk: read exactly that record.
            if case .incomplete = SpoolRecord.decode(bytes[...]), bytes.count >= SpoolRecord.headerBytes,
               position.offset + bytes.count < end {
                let size = SpoolRecord.headerBytes + Int(SpoolRecord.bodyLength(bytes[...]))
                bytes = try files.read(path, offset: position.offset, count: min(end - position.offset, size))
            }
        } catch {
            logger.error("cannot read the spool: \(error)")
            return []
        }
        var found: [(entry: SpoolEntry, end: Int)] = []
        var offset = 0
        var damaged = false
        while found.count < limit, offset < bytes.count {
            switch SpoolRecord.decode(bytes[offset...]) {
            case .entry(let entry, let size):
                offset += size
                found.append((entry, position.offset + offset))
            case .incomplete where position.offset + bytes.count < end:
                offset = bytes.count  // the record continues past this chunk: read it next time
            case .incomplete, .corrupt:
                damaged = true
                offset = bytes.count
            }
            if damaged || offset == bytes.count { break }
        }
        let now = clock.now()
        return state.withLock { state in
            // A segment dropped meanwhile (when_full: drop_oldest, max_age) or a rewind moved the reader: read again.
            guard state.read == position else { return [] }
            guard let index = state.segments.firstIndex(where: { $0.number == position.segment }) else { return [] }
            let segment = state.segments[index]
            var batch: [Item] = []
            for (entry, recordEnd) in found {
                let ticket = state.nextTicket
                state.nextTicket += 1
                state.unacked.append(UnackedEntry(ticket: ticket, segment: position.segment, end: recordEnd, ts: entry.receivedAt))
                let age = SpoolAge.of(stampMs: entry.receivedAt, offset: segment.clockOffset, now: now, opened: state.opened)
                batch.append(Item(ticket: ticket, entry: entry, expired: age > limits.maxAgeMs))
            }
            state.segments[index].read += found.count
            state.read.offset = found.last?.end ?? position.offset
            if damaged {
                // Entries flushed after `end` was sampled lie beyond the damage and are still read later.
                let lost = recordsUpToEnd - state.segments[index].read
                logger.error("spool segment \(path) is damaged at offset \(state.read.offset); \(lost) entries up to offset \(end) are lost")
                state.segments[index].records -= lost
                state.depth -= lost
                state.dropped += lost
                state.read.offset = end
            }
            return batch
        }
    }

    /// Where the next read starts and where durable data ends there; moves to the next segment at the end
    /// of a finished one. Nil when everything durable has been read.
    private func nextReadRange() -> (SpoolFiles.Position, end: Int, records: Int)? {
        state.withLock { state in
            guard !state.segments.isEmpty else { return nil }
            while let index = state.segments.firstIndex(where: { $0.number == state.read.segment }) {
                let segment = state.segments[index]
                if state.read.offset < segment.bytes { return (state.read, segment.bytes, segment.records) }
                guard index + 1 < state.segments.count else { return nil }
                state.read = SpoolFiles.Position(segment: state.segments[index + 1].number, offset: state.segments[index + 1].start)
            }
            state.read = SpoolFiles.Position(segment: state.segments[0].number, offset: state.segments[0].start)
            return nil
        }
    }

    /// The broker has the entry (or it was expired, or refused for good): it may leave the log once all
    /// before it have; an entry the broker confirmed stays `keepAcknowledgedMs` longer.
    func acknowledge(_ ticket: Ticket, expired: Bool = false) {
        let until = clock.now().monotonicMs &+ limits.keepAcknowledgedMs
        let moved = state.withLock { state in
            guard ticket >= state.firstValidTicket else { return false }
            if expired { state.expired += 1 }
            if limits.keepAcknowledgedMs > 0, !expired {
                state.kept.append((ticket, until))
                return false
            }
            state.acknowledged.insert(ticket)
            return advanceCheckpoint(&state)
        }
        if moved { scheduleCheckpoint() }
    }

    /// Whether `ticket` still counts: false once a `rewind()` made its entry to be read again.
    func isCurrent(_ ticket: Ticket) -> Bool {
        state.withLock { ticket >= $0.firstValidTicket }
    }

    /// The broker may have lost what it acknowledged lately (the embedded broker died before saving): every
    /// entry still in the log, kept or not yet acknowledged, is read and published again, oldest first.
    /// Tickets handed out before are void.
    func rewind() {
        state.withLock { state in
            guard state.isOpen else { return }
            state.firstValidTicket = state.nextTicket
            state.unacked.removeAll()
            state.acknowledged.removeAll()
            state.kept.removeAll()
            state.read = max(state.checkpoint, SpoolFiles.Position(segment: state.segments[0].number, offset: state.segments[0].start))
            for index in state.segments.indices { state.segments[index].read = state.segments[index].committed }
        }
    }

    /// The broker saved everything it acknowledged (the embedded broker stopped cleanly): the kept entries
    /// leave the log now, and the checkpoint is saved at once.
    func brokerSavedAll() {
        state.withLock { state in
            while let kept = state.kept.popFirst() { state.acknowledged.insert(kept.ticket) }
            _ = advanceCheckpoint(&state)
        }
        queue.sync { saveCheckpoint() }
    }

    /// Moves the checkpoint over the acknowledged prefix and deletes finished segments; true when it moved.
    private func advanceCheckpoint(_ state: inout State) -> Bool {
        var moved = false
        while let first = state.unacked.first, state.acknowledged.remove(first.ticket) != nil {
            state.unacked.removeFirst()
            moved = true
            state.checkpoint = SpoolFiles.Position(segment: first.segment, offset: first.end)
            guard let index = state.segments.firstIndex(where: { $0.number == first.segment }) else { continue }
            state.segments[index].committed += 1
            state.segments[index].oldestTs = first.ts
            state.depth -= 1
        }
        while state.segments.count > 1, state.segments[0].committed == state.segments[0].records,
              state.read.segment > state.segments[0].number {
            _ = removeFirstSegment(&state)
        }
        guard moved, !state.checkpointScheduled else { return false }
        state.checkpointScheduled = true
        return true
    }

    private func scheduleCheckpoint() {
        queue.asyncAfter(deadline: .now() + .milliseconds(200)) { self.saveCheckpoint() }
    }

    private func saveCheckpoint() {
        let position = state.withLock { state in
            state.checkpointScheduled = false
            return state.isOpen ? state.checkpoint : nil
        }
        guard let position else { return }
        do {
            try files.writeCheckpoint(position)
        } catch {
            logger.warning("cannot save the spool checkpoint (entries may be published twice after a restart): \(error)")
        }
    }

    /// True when every appended entry is durable and has been read: nothing in the log is ahead of a new message.
    var isCaughtUp: Bool {
        state.withLock { state in
            state.segments.isEmpty || (state.pendingRecords == 0 && state.flushingRecords == 0
                && state.read.segment == state.active.number && state.read.offset == state.active.bytes)
        }
    }

    var isEmpty: Bool { state.withLock { $0.depth == 0 } }

    func stats() -> Stats {
        let now = clock.now()
        return state.withLock { state in
            var oldestAgeMs: Int64 = 0
            let oldest = state.unacked.first.map { ($0.segment, $0.ts) }
                ?? state.segments.first { $0.records > $0.committed }.map { ($0.number, $0.oldestTs) }
            if state.depth > 0, let (number, ts) = oldest, let segment = state.segments.first(where: { $0.number == number }) {
                oldestAgeMs = max(0, SpoolAge.of(stampMs: ts, offset: segment.clockOffset, now: now, opened: state.opened))
            }
            return Stats(depth: state.depth, bytes: state.bytes, oldestAgeMs: oldestAgeMs, dropped: state.dropped,
                         expired: state.expired, problem: state.problem)
        }
    }

    // MARK: Housekeeping

    /// Every second: opens a spool that is off (every 5 s), tries writing after a failed write (every 2 s),
    /// lets kept entries go once their time is up, and deletes finished segments older than `max_age`.
    private func scheduleHousekeeping() {
        queue.asyncAfter(deadline: .now() + .seconds(1)) { [weak self] in
            guard let self, self.housekeeping() else { return }
            self.scheduleHousekeeping()
        }
    }

    /// One round of housekeeping (on the queue every second; tests call it directly); false once the spool is
    /// shut down.
    @discardableResult
    func housekeeping() -> Bool {
        let now = clock.now()
        let (closed, isOpen, failing, since) = state.withLock {
            ($0.closed, $0.isOpen, $0.writeFailure != nil, now.monotonicMs &- $0.lastAttemptMs)
        }
        if closed { return false }
        if !isOpen {
            if since >= 5_000 { try? open() }
            return true
        }
        if failing, since >= 2_000 { probeWriting() }
        let (expired, moved) = state.withLock { state -> (Int, Bool) in
            while let first = state.kept.first, first.untilMs <= now.monotonicMs {
                state.kept.removeFirst()
                state.acknowledged.insert(first.ticket)
            }
            let moved = advanceCheckpoint(&state)
            var expired = 0
            while state.segments.count > 1,
                  SpoolAge.of(stampMs: state.segments[0].newestTs, offset: state.segments[0].clockOffset, now: now, opened: state.opened)
                    > limits.maxAgeMs {
                expired += removeFirstSegment(&state)
            }
            state.expired += expired
            return (expired, moved)
        }
        if moved { scheduleCheckpoint() }
        if expired > 0 { logger.warning("spool: dropped \(expired) entries older than spool.max_age") }
        return true
    }

    /// Refuses further appends, writes what is pending, saves the checkpoint and closes the files.
    func shutDown() {
        queue.sync {
            state.withLock { $0.closed = true }
            flush()
            saveCheckpoint()
            state.withLock { state in
                if state.writer >= 0 { Glibc.close(state.writer) }
                state.writer = -1
            }
        }
    }
}
