import Dispatch
import Foundation
import Glibc
import Logging
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
///
/// `SpoolState` makes every decision; this class keeps it behind `state` and does the file I/O, never with
/// `state` held: writes, syncs, segment rolls, unlinks and checkpoint saves run on the spool's queue, reads on
/// the caller's (the replay queue). Appends and `rewind()` are called with the outbox's lock held, so they
/// only change memory (see "Locks and their order" in docs/architecture.md).
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
    private let clock: any SpoolClock
    private let logger: Logger
    /// Runs the group commits, segment rolls, unlinks, checkpoint writes, housekeeping and reopening, one at a time.
    private let queue = DispatchQueue(label: "gatehouse.spool")
    private let state: Mutex<SpoolState>
    /// Called on the spool's queue after each group commit: new entries can be read.
    private let durableHook = Mutex<ClosureBox<Void, Void>?>(nil)
    /// Called on the spool's queue when a spool that was off opens with entries of an earlier run.
    private let openedHook = Mutex<ClosureBox<Void, Void>?>(nil)

    /// Sets what runs after each group commit.
    func onDurable(_ run: @escaping @Sendable () -> Void) {
        durableHook.withLock { $0 = ClosureBox(run) }
    }

    /// Sets what runs when a spool that could not be opened at start opens later holding entries.
    func onOpenedWithEntries(_ run: @escaping @Sendable () -> Void) {
        openedHook.withLock { $0 = ClosureBox(run) }
    }

    /// Opens the spool in `dir`, recovering what a previous run left (see `SpoolFiles.recover`), and starts
    /// a new segment for this run's appends. A disk that refuses (full, failing) does not make it fail: the
    /// spool is then off (logged, and in `stats().problem`) and is opened again later.
    ///
    /// - Throws: `SpoolFiles.IOError` when `dir` is misconfigured (not a directory, not ours to use).
    init(dir: String, limits: Limits, clock: any SpoolClock = SystemSpoolClock(), logger: Logger) throws(SpoolFiles.IOError) {
        self.files = SpoolFiles(dir: dir)
        self.clock = clock
        self.logger = logger
        self.state = Mutex(SpoolState(limits: limits))
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
            if state.withLock({ $0.openFailed("\(error)", now: now) }) {
                logger.error("the spool is off: \(error). The gateway runs on; while the broker is unreachable, messages that must be safe are refused (nack broker_unavailable). Trying again every 5 s", metadata: ["spool.dir": "\(files.dir)"])
            }
            return
        }
        let (wasOff, depth) = state.withLock { $0.opened(segments: opened.segments, writer: opened.writer, now: now, boot: clock.boot) }
        if wasOff { logger.notice("the spool is open again", metadata: ["spool.dir": "\(files.dir)"]) }
        if depth > 0 {
            logger.notice("spool holds \(depth) entries from the previous run; they are published once the broker is reachable", metadata: ["spool.dir": "\(files.dir)"])
        }
        probeWriting()
        if wasOff, depth > 0 { openedHook.withLock { $0 }?.call(()) }
    }

    /// Cuts the active segment back to its durable end and saves the checkpoint durably: when both work the
    /// disk takes writes again. At open and every 2 s after a failed write.
    private func probeWriting() {
        if state.withLock({ $0.wantsNewSegmentToFreeSpace }) {
            startNewSegment()
            perform(state.withLock { $0.advanceCheckpoint() })
        }
        let probe = state.withLock { $0.probeStarted(now: clock.now()) }
        do {
            if probe.writer >= 0, ftruncate(probe.writer, off_t(probe.durableEnd)) != 0 {
                throw SpoolFiles.IOError("truncate", files.segmentPath(probe.segment))
            }
            try files.writeCheckpoint(probe.checkpoint, durable: true)
        } catch {
            state.withLock { $0.probeEnded(failure: "the spool cannot be written: \(error)") }
            if !probe.wasFailing {
                logger.error("the spool cannot be written (disk full?): \(error). While the broker is unreachable, messages that must be safe are refused (nack broker_unavailable). Trying again every 2 s", metadata: ["spool.dir": "\(files.dir)"])
            }
            return
        }
        state.withLock { $0.probeEnded(failure: nil) }
        if probe.wasFailing { logger.notice("the spool can be written again", metadata: ["spool.dir": "\(files.dir)"]) }
    }

    /// Does what a decision asks for, with `state` released. The file work goes to the spool's queue, since
    /// appends are decided with the outbox's lock held.
    private func perform(_ effects: SpoolState.Effects) {
        if !effects.deleteSegments.isEmpty || effects.droppedToFit > 0 || effects.expiredByAge > 0 {
            queue.async { [files, logger] in
                for number in effects.deleteSegments { files.remove(number) }
                if !effects.deleteSegments.isEmpty { files.compactClocks() }
                if effects.droppedToFit > 0 {
                    logger.warning("spool full: dropped the \(effects.droppedToFit) oldest entries (spool.when_full: drop_oldest)")
                }
                if effects.expiredByAge > 0 { logger.warning("spool: dropped \(effects.expiredByAge) entries older than spool.max_age") }
            }
        }
        if effects.saveCheckpoint {
            queue.asyncAfter(deadline: .now() + .milliseconds(200)) { self.saveCheckpoint() }
        }
        if effects.flush { queue.async { self.flush() } }
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
        let appended = state.withLock { $0.append(entry, published: published, completion: completion, now: now) }
        perform(appended.effects)
        if let refusal = appended.refusal { throw refusal }
        return appended.ticket
    }

    /// One group commit: writes everything appended since the last one with a single sync, then runs
    /// their completions. Runs on `queue`.
    private func flush() {
        guard let batch = state.withLock({ $0.takeBatch() }) else { return }
        if batch.startsNewSegment { startNewSegment() }
        switch state.withLock({ $0.writeTarget() }) {
        case .refused(let reason):
            state.withLock { $0.batchRefused(batch, diskFailure: nil) }
            for completion in batch.completions { completion(.io(reason)) }
        case .segment(let number, let writer, let durableEnd):
            if durableEnd == 0 { files.noteClock(SpoolFiles.SegmentClock(boot: clock.boot, offset: batch.clockOffset), of: number) }
            do {
                try files.appendDurably(writer, batch.bytes, path: files.segmentPath(number))
            } catch {
                // The disk refused (e.g. it is full): these messages are refused, and so is every new one until a
                // test write works (`probeWriting`, which also cuts the file back to its durable end again).
                logger.error("spool write failed; \(batch.records) messages refused: \(error)")
                _ = ftruncate(writer, off_t(durableEnd))
                state.withLock { $0.batchRefused(batch, diskFailure: "the spool cannot be written: \(error)") }
                for completion in batch.completions { completion(.io("\(error)")) }
                return
            }
            let (full, effects) = state.withLock { $0.batchWritten(batch) }
            // Rolled before the completions run: whoever sees an entry acked also sees the segment it lies in closed.
            if full { startNewSegment() }
            perform(effects)
            for completion in batch.completions { completion(nil) }
            durableHook.withLock { $0 }?.call(())
        }
    }

    /// Starts the next segment (the active one is big enough, the wall clock was stepped, or the disk filled
    /// up), so acknowledged segments can be deleted and each segment has one clock offset. On `queue`, so
    /// the active segment cannot change between reading it and recording the next.
    private func startNewSegment() {
        let number = state.withLock { $0.activeSegment }
        do {
            let next = try files.create(number + 1)
            let previous = state.withLock { $0.segmentStarted(after: number, writer: next) }
            Glibc.close(previous)
        } catch {
            logger.error("cannot start a new spool segment; still appending to the current one: \(error)")
        }
    }

    // MARK: Reading and acknowledging

    /// Up to `limit` durable entries not read yet, in append order, each with the ticket to acknowledge it by.
    /// Called from one replay loop at a time.
    func read(limit: Int) -> [Item] {
        guard limit > 0 else { return [] }
        // A damaged spot where a read starts moves the reader without handing anything out: read on from there
        // (an empty read tells the replay that everything was read).
        while let range = state.withLock({ $0.nextReadRange() }) {
            let (items, movedPastDamage) = read(range, limit: limit)
            if !items.isEmpty || !movedPastDamage { return items }
        }
        return []
    }

    private func read(_ range: SpoolState.ReadRange, limit: Int) -> (items: [Item], movedPastDamage: Bool) {
        let (position, end) = (range.start, range.end)
        let path = files.segmentPath(position.segment)
        var found: [(entry: SpoolEntry, end: Int)] = []
        var damage: SpoolState.Damage?
        do {
            var bytes = try files.read(path, offset: position.offset, count: min(end - position.offset, 1 << 20))
            // A record bigger than one chunk: read exactly that record.
            if case .incomplete = SpoolRecord.decode(bytes[...]), bytes.count >= SpoolRecord.headerBytes,
               position.offset + bytes.count < end {
                let size = SpoolRecord.headerBytes + Int(SpoolRecord.bodyLength(bytes[...]))
                bytes = try files.read(path, offset: position.offset, count: min(end - position.offset, size))
            }
            let run = SpoolRecord.decodeRun(bytes, at: position.offset, durableEnd: end, limit: limit)
            found = run.found
            if run.damaged {
                // Rare (the disk damaged a durable record): the rest of the range is read to find where good records go on.
                let spot = found.last?.end ?? position.offset
                damage = SegmentScan.resumption(after: try files.read(path, offset: spot, count: end - spot), at: spot)
            }
        } catch where error.isUnreadableFile {
            // Bytes the disk cannot give back (EIO): the range's records from here are lost, and reading goes on after
            // it, rather than stopping the replay there for good.
            logger.error("cannot read the spool: \(error)")
            damage = SpoolState.Damage(resumeAt: end, intactAfter: 0)
        } catch {
            logger.error("cannot read the spool now: \(error)")  // (no file descriptor, say): read again later
            return ([], false)
        }
        let now = clock.now()
        let result = state.withLock { $0.read(found, from: range, damage: damage, now: now) }
        if let (lost, offset) = result.lostToDamage, let damage {
            logger.error("spool segment \(path) is damaged at offset \(offset): \(lost) entries lost, reading goes on at offset \(damage.resumeAt)")
        }
        return (result.items, damage != nil)
    }

    /// The broker has the entry (or it was expired, or refused for good): it may leave the log once all
    /// before it have; an entry the broker confirmed stays `keepAcknowledgedMs` longer.
    func acknowledge(_ ticket: Ticket, expired: Bool = false) {
        let now = clock.now()
        perform(state.withLock { $0.acknowledge(ticket, expired: expired, now: now) })
    }

    /// Whether `ticket` still counts: false once a `rewind()` made its entry to be read again.
    func isCurrent(_ ticket: Ticket) -> Bool {
        state.withLock { $0.isCurrent(ticket) }
    }

    /// The broker may have lost what it acknowledged lately (the embedded broker died before saving), or refused a
    /// replayed entry for now (the outbox replays in order from there): every entry still in the log, kept or not
    /// yet acknowledged, is read and published again, oldest first.
    /// Tickets handed out before are void.
    func rewind() {
        state.withLock { $0.rewind() }
    }

    /// The broker saved everything it acknowledged (the embedded broker stopped cleanly): the kept entries
    /// leave the log now, and the checkpoint is saved at once.
    func brokerSavedAll() {
        perform(state.withLock { $0.brokerSavedAll() })
        queue.sync { saveCheckpoint() }
    }

    private func saveCheckpoint() {
        guard let position = state.withLock({ $0.checkpointToSave() }) else { return }
        do {
            try files.writeCheckpoint(position)
        } catch {
            logger.warning("cannot save the spool checkpoint (entries may be published twice after a restart): \(error)")
        }
    }

    /// True when every appended entry is durable and has been read: nothing in the log is ahead of a new message.
    var isCaughtUp: Bool { state.withLock { $0.isCaughtUp } }

    var isEmpty: Bool { state.withLock { $0.isEmpty } }

    func stats() -> Stats {
        let now = clock.now()
        return state.withLock { $0.stats(now: now) }
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
        switch state.withLock({ $0.choreDue(now: now) }) {
        case .stop:
            return false
        case .wait:
            return true
        case .open:
            try? open()
            return true
        case .tidy(let probeFirst):
            if probeFirst { probeWriting() }
            perform(state.withLock { $0.tidy(now: now) })
            return true
        }
    }

    /// Refuses further appends, writes what is pending, saves the checkpoint and closes the files.
    func shutDown() {
        queue.sync {
            state.withLock { $0.close() }
            flush()
            saveCheckpoint()
            let writer = state.withLock { $0.takeWriter() }
            if writer >= 0 { Glibc.close(writer) }
        }
    }
}
