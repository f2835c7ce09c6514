import Glibc
import Logging

/// One segment file as the spool tracks it.
struct SegmentInfo {
    let number: UInt64
    /// Where reading starts: after the prefix an earlier run's broker acknowledged (only in the oldest segment
    /// found at start), else 0.
    var start = 0
    /// File size: what counts against `spool.max_bytes`.
    var bytes: Int
    /// Records in the file (from where reading starts), how many were handed to the broker, and how many it acknowledged.
    var records: Int
    var read = 0
    var committed = 0
    /// Spool stamps (wall ms) of the oldest unacknowledged and the newest record, for `spool.max_age`.
    var oldestTs: Int64
    var newestTs: Int64
    /// Wall minus monotonic clock when its records were stamped (`SpoolAge`); nil for an earlier run's segment.
    var clockOffset: Int64?
    /// An earlier run's segment: the boot and clock offset its records were stamped with, when the `clocks` file
    /// says, and what to add to its stamps to put them on the last wall clock of that boot (`SpoolState.opened`).
    var written: SpoolFiles.SegmentClock?
    var stampShift: Int64 = 0
}

/// What a scan of a segment's bytes found.
struct SegmentScan {
    struct Damage: Equatable {
        var offset: Int
        var length: Int
    }
    /// Good records: where each starts, its size and receive time.
    var records: [(offset: Int, size: Int, ts: Int64)] = []
    /// Byte ranges that hold no good record (torn writes, corruption).
    var damage: [Damage] = []

    /// Scans `bytes` from `start`: after a bad record it searches forward for the next good one, so one
    /// damaged spot costs only the records it touches.
    init(_ bytes: [UInt8], from start: Int = 0) {
        var offset = start
        while offset < bytes.count {
            if case .entry(let entry, let size) = SpoolRecord.decode(bytes[offset...]) {
                records.append((offset, size, entry.receivedAt))
                offset += size
                continue
            }
            let next = Self.nextRecord(in: bytes, after: offset) ?? bytes.count
            damage.append(Damage(offset: offset, length: next - offset))
            offset = next
        }
    }

    /// Where reading goes on after a damaged spot found while the gateway runs (a bad sector, another process
    /// writing to the file): `rest` holds the segment's durable bytes from the spot, which is at `offset`. The next
    /// good record there (or the end of `rest`), and how many good records lie from it on, so that only the records
    /// the spot touched count as lost, as at recovery.
    static func resumption(after rest: [UInt8], at offset: Int) -> SpoolState.Damage {
        let scan = SegmentScan(rest)
        return SpoolState.Damage(resumeAt: offset + (scan.records.first?.offset ?? rest.count), intactAfter: scan.records.count)
    }

    private static func nextRecord(in bytes: [UInt8], after offset: Int) -> Int? {
        var candidate = offset + 1
        while candidate + SpoolRecord.headerBytes <= bytes.count {
            if bytes[candidate] == SpoolRecord.magic[0], case .entry = SpoolRecord.decode(bytes[candidate...]) {
                return candidate
            }
            candidate += 1
        }
        return nil
    }
}

extension SpoolFiles {
    /// Opens the log for a new run: recovers what earlier runs left (`recover`) and creates this run's first
    /// segment. Writes nothing else, so that a full disk still lets the spool open and publish what it holds.
    func openLog(logger: Logger) throws(IOError) -> (segments: [SegmentInfo], writer: Int32) {
        try prepare()
        try lock(logger: logger)
        var checkpoint = readCheckpoint()
        // A checkpoint past every segment on disk is not one a run wrote (a damaged file): followed, it would delete
        // every segment below it. Ignored instead, and removed: their entries go again (duplicates, never losses).
        if let found = checkpoint, let last = segmentNumbers().last, found.segment > last {
            logger.warning("spool checkpoint names segment \(found.segment), past the last one on disk (\(last)): ignored; entries may be published again",
                           metadata: ["file": "\(checkpointPath)"])
            checkpoint = nil
            unlink(checkpointPath)
        }
        var segments = try recover(checkpoint: checkpoint, logger: logger)
        let clocks = readClocks()
        for index in segments.indices { segments[index].written = clocks[segments[index].number] }
        keepClocks(clocks.filter { number, _ in segments.contains { $0.number == number } })
        // Numbers are never reused and the new one is above the checkpoint's segment, so a checkpoint left
        // from an earlier run can never make a later recovery skip this run's entries.
        // (Also above a segment that could be neither read nor set aside.)
        let number = max(segmentNumbers().last ?? 0, checkpoint?.segment ?? 0) + 1
        let writer = try create(number)
        segments.append(SegmentInfo(number: number, bytes: 0, records: 0, oldestTs: 0, newestTs: 0))
        return (segments, writer)
    }

    /// Loads the segments a previous run left: skips what the checkpoint says the broker already has, keeps
    /// every good record, cuts a torn last record off, rewrites segments damaged elsewhere without their bad
    /// bytes (logging what was lost) and deletes empty ones. A segment that cannot be read (EIO, permissions, a
    /// dangling link) is set aside (renamed `.unreadable-…`, for an operator) and the others are replayed; one that
    /// cannot be repaired (a full disk) is kept as it is, since the reader goes past damaged spots too
    /// (`resumption`). A process short of file descriptors or memory throws: the spool stays off and tries again.
    func recover(checkpoint: Position?, logger: Logger) throws(IOError) -> [SegmentInfo] {
        var segments: [SegmentInfo] = []
        for number in segmentNumbers() {
            if let checkpoint, number < checkpoint.segment {
                remove(number)
                continue
            }
            let path = segmentPath(number)
            let bytes: [UInt8]
            do {
                bytes = try readAll(path)
            } catch where !error.isShortOfResources {
                let aside = setAside(number).map { " It is kept as \($0)." } ?? ""
                logger.error("spool segment cannot be read: its entries are not replayed.\(aside) \(error)", metadata: ["file": "\(path)"])
                continue
            }
            if let segment = recover(number, bytes, checkpoint: checkpoint, path: path, logger: logger) { segments.append(segment) }
        }
        return segments
    }

    /// One segment's good records; nil (and the file removed) when it has none.
    private func recover(_ number: UInt64, _ bytes: [UInt8], checkpoint: Position?, path: String, logger: Logger) -> SegmentInfo? {
        var start = checkpoint?.segment == number ? checkpoint!.offset : 0
        if start > 0, !Self.isRecordBoundary(start, in: bytes) {
            // Not where a record starts or the records end: not an offset a run wrote (a damaged checkpoint). Followed,
            // it would skip every record before it; the segment is read from its start instead (duplicates), and the
            // checkpoint says so at once (a rewrite below could otherwise put a record where the bad offset points).
            logger.warning("spool checkpoint offset \(start) is not at a record of segment \(number): read from its start; entries may be published again",
                           metadata: ["file": "\(path)"])
            start = 0
            try? writeCheckpoint(Position(segment: number, offset: 0), durable: true)
        }
        let scan = SegmentScan(bytes, from: start)
        guard let first = scan.records.first else {
            if !scan.damage.isEmpty { logDamage(scan, path: path, kept: 0, logger: logger) }
            remove(number)
            return nil
        }
        var size = bytes.count
        let goodEnd = scan.records.last.map { $0.offset + $0.size } ?? start
        if !scan.damage.isEmpty { logDamage(scan, path: path, kept: scan.records.count, logger: logger) }
        do {
            if scan.damage.count == 1, scan.damage[0].offset >= goodEnd {
                // A torn last record: cut it off in place (no copy, so this works on a full disk too).
                try truncate(path, to: goodEnd)
                size = goodEnd
            } else if !scan.damage.isEmpty {
                // Rewrite with the good, unacknowledged records only. The checkpoint is moved to the start of
                // the file first: a crash in between then repeats entries rather than skipping any.
                if start > 0 { try writeCheckpoint(Position(segment: number, offset: 0), durable: true) }
                var good: [UInt8] = []
                for record in scan.records { good.append(contentsOf: bytes[record.offset..<record.offset + record.size]) }
                try replace(path, with: good, durable: true)
                size = good.count
                start = 0
            }
        } catch {
            // Kept as it is: its damaged spots are skipped when read, and a torn tail is never read.
            logger.error("spool segment not repaired (kept as it is): \(error)", metadata: ["file": "\(path)"])
            if scan.damage.last.map({ $0.offset >= goodEnd }) == true { size = goodEnd }
        }
        return SegmentInfo(
            number: number, start: start, bytes: size, records: scan.records.count,
            oldestTs: first.ts, newestTs: scan.records.map(\.ts).max() ?? first.ts)
    }

    /// Whether `offset` is where a good record of `bytes` starts, where one ends, or the end of the file (whose last
    /// record, acknowledged, may have been damaged since).
    private static func isRecordBoundary(_ offset: Int, in bytes: [UInt8]) -> Bool {
        offset == bytes.count || SegmentScan(bytes).records.contains { $0.offset == offset || $0.offset + $0.size == offset }
    }

    private func logDamage(_ scan: SegmentScan, path: String, kept: Int, logger: Logger) {
        let spots = scan.damage.map { "\($0.length) bytes at offset \($0.offset)" }.joined(separator: ", ")
        let goodEnd = scan.records.last.map { $0.offset + $0.size } ?? 0
        let onlyTornTail = scan.damage.count == 1 && scan.damage[0].offset >= goodEnd
        if onlyTornTail {
            // A write cut short by a crash: it was never synced, so no device was acked for it.
            logger.warning("spool segment ends in an incomplete record (a write cut short); discarded \(spots), kept \(kept) entries",
                           metadata: ["file": "\(path)"])
        } else {
            logger.error(
                "spool segment damaged (corruption, e.g. after a power cut): discarded \(spots); kept \(kept) good entries",
                metadata: ["file": "\(path)"])
        }
    }
}
