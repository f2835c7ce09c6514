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
/// `acknowledge` says the broker has it. A segment file is deleted once all its entries are acknowledged;
/// the `checkpoint` file lets a restart skip what was already acknowledged in the oldest segment.
final class Spool: Sendable {
    struct Limits: Sendable {
        var maxBytes: Int
        var maxAgeMs: Int64
        var dropOldest: Bool
    }

    enum AppendError: Error, Sendable {
        /// `spool.max_bytes` reached (and `when_full` is `reject`).
        case full
        /// The disk refused a write: the entry is not safe.
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
    }

    private let files: SpoolFiles
    private let limits: Limits
    private let segmentBytes: Int
    private let logger: Logger
    /// Runs the group commits, segment rolls, checkpoint writes and `max_age` sweeps, one at a time.
    private let queue = DispatchQueue(label: "gatehouse.spool")
    private let state: Mutex<State>
    /// Called on the spool's queue after each group commit: new entries can be read.
    private let durableHook = Mutex<Hook?>(nil)

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

    private struct UnackedEntry {
        var ticket: Ticket
        var segment: UInt64
        var end: Int
        var ts: Int64
    }

    private struct State {
        var segments: [SegmentInfo]
        var writer: Int32
        var pending: [UInt8] = []
        var pendingCompletions: [Completion] = []
        var pendingRecords = 0
        var pendingNewest: Int64 = 0
        var flushScheduled = false
        var flushingBytes = 0
        var flushingRecords = 0
        var read: SpoolFiles.Position
        var nextTicket: Ticket = 0
        var unacked = CircularBuffer<UnackedEntry>()
        var acknowledged = Set<Ticket>()
        var checkpoint: SpoolFiles.Position
        var checkpointScheduled = false
        var depth: Int
        var dropped = 0
        var expired = 0
        var failure: String?
        var closed = false

        var active: SegmentInfo { segments[segments.count - 1] }
        var bytes: Int { segments.reduce(0) { $0 + $1.bytes } + pending.count + flushingBytes }
    }

    /// Opens the spool in `dir`, recovering what a previous run left (see `SpoolFiles.recover`), and starts
    /// a new segment for this run's appends.
    ///
    /// - Throws: `SpoolFiles.IOError` when the directory cannot be created, read or written.
    init(dir: String, limits: Limits, logger: Logger) throws {
        self.files = SpoolFiles(dir: dir)
        self.limits = limits
        self.segmentBytes = min(max(limits.maxBytes / 8, 4096), 16 << 20)
        self.logger = logger
        try files.prepare()
        let checkpoint = files.readCheckpoint()
        var segments = try files.recover(checkpoint: checkpoint, logger: logger)
        // Numbers are never reused, and the checkpoint is moved to the start of what was kept before anything
        // is appended: a stale checkpoint must not make a later recovery skip new entries.
        let number = max(segments.last?.number ?? 0, checkpoint?.segment ?? 0) + 1
        let writer = try files.create(number)
        let depth = segments.reduce(0) { $0 + $1.records }
        segments.append(SegmentInfo(number: number, bytes: 0, records: 0, oldestTs: 0, newestTs: 0))
        let start = SpoolFiles.Position(segment: segments[0].number, offset: 0)
        try files.writeCheckpoint(start, durable: true)
        state = Mutex(State(segments: segments, writer: writer, read: start, checkpoint: start, depth: depth))
        if depth > 0 {
            logger.notice("spool holds \(depth) entries from the previous run; they are published once the broker is reachable", metadata: ["spool.dir": "\(dir)"])
        }
        scheduleSweep()
    }

    // MARK: Appending

    /// Queues `entry` for the next group commit; `completion` runs on the spool's queue once it is durable
    /// (nil) or could not be written. Throws `.full` at once when `max_bytes` leaves no room.
    func append(_ entry: SpoolEntry, completion: @escaping Completion) throws(AppendError) {
        var record: [UInt8] = []
        SpoolRecord.encode(entry, into: &record)
        let (scheduleFlush, dropped) = try state.withLock { state throws(AppendError) -> (Bool, Int) in
            if let failure = state.failure { throw .io(failure) }
            if state.closed { throw .io("the spool is closed") }
            var dropped = 0
            if state.bytes + record.count > limits.maxBytes {
                if limits.dropOldest { dropped = dropOldest(&state, toFit: record.count) }
                if state.bytes + record.count > limits.maxBytes { throw .full }
            }
            state.pending.append(contentsOf: record)
            state.pendingCompletions.append(completion)
            state.pendingRecords += 1
            state.pendingNewest = max(state.pendingNewest, entry.receivedAt)
            state.depth += 1
            defer { state.flushScheduled = true }
            return (!state.flushScheduled, dropped)
        }
        if dropped > 0 { logger.warning("spool full: dropped the \(dropped) oldest entries (spool.when_full: drop_oldest)") }
        if scheduleFlush { queue.async { self.flush() } }
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
        let next = SpoolFiles.Position(segment: state.segments[0].number, offset: 0)
        if state.read < next { state.read = next }
        if state.checkpoint < next { state.checkpoint = next }
        return lost
    }

    /// One group commit: writes everything appended since the last one with a single sync, then runs
    /// their completions. Runs on `queue`.
    private func flush() {
        let (batch, completions, records, newest, writer, number) = state.withLock { state in
            defer {
                state.pending = []
                state.pendingCompletions = []
                state.pendingRecords = 0
                state.pendingNewest = 0
                state.flushScheduled = false
            }
            state.flushingBytes = state.pending.count
            state.flushingRecords = state.pendingRecords
            return (state.pending, state.pendingCompletions, state.pendingRecords, state.pendingNewest, state.writer, state.active.number)
        }
        guard !batch.isEmpty else { return }
        guard writer >= 0 else {
            for completion in completions { completion(.io("the spool is closed")) }
            return
        }
        do {
            try files.appendDurably(writer, batch, path: files.segmentPath(number))
        } catch {
            // Cut the file back to its durable end so later records stay aligned (e.g. the disk was full:
            // these messages are refused, later ones are taken again once there is room).
            let durableEnd = state.withLock { $0.active.bytes }
            let repaired = ftruncate(writer, off_t(durableEnd)) == 0
            logger.error("spool write failed; \(records) messages refused: \(error)")
            state.withLock { state in
                if !repaired { state.failure = "\(error)" }
                state.depth -= records
                state.flushingBytes = 0
                state.flushingRecords = 0
            }
            if !repaired { logger.critical("cannot repair the spool segment; messages can no longer be spooled") }
            for completion in completions { completion(.io("\(error)")) }
            return
        }
        let roll = state.withLock { state in
            let last = state.segments.count - 1
            if state.segments[last].records == 0 { state.segments[last].oldestTs = newest }
            state.segments[last].bytes += batch.count
            state.segments[last].records += records
            state.segments[last].newestTs = max(state.segments[last].newestTs, newest)
            state.flushingBytes = 0
            state.flushingRecords = 0
            return state.segments[last].bytes >= segmentBytes
        }
        // Rolled before the completions run: whoever sees an entry acked also sees the segment it lies in closed.
        if roll { rollSegment(after: number, closing: writer) }
        for completion in completions { completion(nil) }
        durableHook.withLock { $0 }?.run()
    }

    /// Starts the next segment once the active one is big enough, so acknowledged segments can be deleted.
    private func rollSegment(after number: UInt64, closing writer: Int32) {
        do {
            let next = try files.create(number + 1)
            state.withLock { state in
                state.segments.append(SegmentInfo(number: number + 1, bytes: 0, records: 0, oldestTs: 0, newestTs: 0))
                state.writer = next
            }
            Glibc.close(writer)
        } catch {
            logger.error("cannot start a new spool segment; still appending to the current one: \(error)")
        }
    }

    // MARK: Reading and acknowledging

    /// Up to `limit` durable entries not read yet, in append order, each with the ticket to acknowledge it by.
    /// Called from one replay loop at a time.
    func read(limit: Int) -> [(ticket: Ticket, entry: SpoolEntry)] {
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
        return state.withLock { state in
            // A segment dropped meanwhile (when_full: drop_oldest, max_age) moved the reader: read again.
            guard state.read == position else { return [] }
            guard let index = state.segments.firstIndex(where: { $0.number == position.segment }) else { return [] }
            var batch: [(Ticket, SpoolEntry)] = []
            for (entry, recordEnd) in found {
                let ticket = state.nextTicket
                state.nextTicket += 1
                state.unacked.append(UnackedEntry(ticket: ticket, segment: position.segment, end: recordEnd, ts: entry.receivedAt))
                batch.append((ticket, entry))
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
            while let index = state.segments.firstIndex(where: { $0.number == state.read.segment }) {
                let segment = state.segments[index]
                if state.read.offset < segment.bytes { return (state.read, segment.bytes, segment.records) }
                guard index + 1 < state.segments.count else { return nil }
                state.read = SpoolFiles.Position(segment: state.segments[index + 1].number, offset: 0)
            }
            state.read = SpoolFiles.Position(segment: state.segments[0].number, offset: 0)
            return nil
        }
    }

    /// The broker has the entry (or it was expired): it may leave the log once all before it have.
    func acknowledge(_ ticket: Ticket, expired: Bool = false) {
        let scheduleCheckpoint = state.withLock { state in
            if expired { state.expired += 1 }
            state.acknowledged.insert(ticket)
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
        if scheduleCheckpoint {
            queue.asyncAfter(deadline: .now() + .milliseconds(200)) { self.saveCheckpoint() }
        }
    }

    private func saveCheckpoint() {
        let position = state.withLock { state in
            state.checkpointScheduled = false
            return state.checkpoint
        }
        do {
            try files.writeCheckpoint(position)
        } catch {
            logger.warning("cannot save the spool checkpoint (entries may be published twice after a restart): \(error)")
        }
    }

    /// True when every appended entry is durable and has been read: nothing in the log is ahead of a new message.
    var isCaughtUp: Bool {
        state.withLock { state in
            state.pendingRecords == 0 && state.flushingRecords == 0
                && state.read.segment == state.active.number && state.read.offset == state.active.bytes
        }
    }

    var isEmpty: Bool { state.withLock { $0.depth == 0 } }

    func stats(now: Int64) -> Stats {
        state.withLock { state in
            let oldest = state.unacked.first?.ts ?? state.segments.first { $0.records > $0.committed }?.oldestTs
            return Stats(
                depth: state.depth, bytes: state.bytes, oldestAgeMs: state.depth > 0 ? max(0, now - (oldest ?? now)) : 0,
                dropped: state.dropped, expired: state.expired)
        }
    }

    /// True when an entry received at `receivedAt` is older than `spool.max_age`. Times before 2020 are not
    /// trusted (a box without a real-time clock before NTP sync) and never expire, so a clock step at boot
    /// cannot sweep away what was acked.
    func isExpired(_ receivedAt: Int64, now: Int64) -> Bool {
        receivedAt > Self.trustedClockFloor && now - receivedAt > limits.maxAgeMs
    }

    private static let trustedClockFloor: Int64 = 1_577_836_800_000

    // MARK: Housekeeping

    /// Every second: deletes finished segments whose newest entry is older than `max_age`.
    private func scheduleSweep() {
        queue.asyncAfter(deadline: .now() + .seconds(1)) { [weak self] in
            guard let self else { return }
            let expired = self.state.withLock { state -> Int in
                guard !state.closed else { return -1 }
                var expired = 0
                let now = nowMs()
                while state.segments.count > 1, self.isExpired(state.segments[0].newestTs, now: now) {
                    expired += self.removeFirstSegment(&state)
                }
                state.expired += expired
                return expired
            }
            if expired > 0 { self.logger.warning("spool: dropped \(expired) entries older than spool.max_age") }
            if expired >= 0 { self.scheduleSweep() }
        }
    }

    /// Refuses further appends, writes what is pending, saves the checkpoint and closes the files.
    func shutDown() {
        queue.sync {
            state.withLock { $0.closed = true }
            flush()
            saveCheckpoint()
            state.withLock { state in
                Glibc.close(state.writer)
                state.writer = -1
            }
        }
    }
}
