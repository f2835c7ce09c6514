import Foundation
import Logging
import Synchronization
import Testing

@testable import Gatehouse

/// Clocks a test sets by hand: the wall clock can be stepped without the monotonic one moving.
final class ManualSpoolClock: SpoolClock {
    private let reading: Mutex<SpoolClockReading>
    let boot: String
    init(wallMs: Int64 = 1_750_000_000_000, monotonicMs: Int64 = 5_000, boot: String = "boot-1") {
        reading = Mutex(SpoolClockReading(wallMs: wallMs, monotonicMs: monotonicMs))
        self.boot = boot
    }
    func now() -> SpoolClockReading { reading.withLock { $0 } }
    /// Time passes: both clocks move.
    func advance(ms: Int64) { reading.withLock { $0.wallMs += ms; $0.monotonicMs += ms } }
    /// Someone sets the wall clock (NTP, an operator): only it moves.
    func stepWall(ms: Int64) { reading.withLock { $0.wallMs += ms } }
}

/// The spool's file format, recovery and bookkeeping, on real files in a temporary directory.
@Suite struct SpoolTests {
    let dir = NSTemporaryDirectory() + "gatehouse-spool-\(UInt64.random(in: 0...UInt64.max))"
    let logger = Logger(label: "spool-test")

    func entry(_ index: Int, topic: String = "t/dev/telemetry", at time: Int64 = 1_000) -> SpoolEntry {
        SpoolEntry(topic: topic, payload: Array("{\"seq\":\(index)}".utf8), receivedAt: time)
    }

    func open(
        maxBytes: Int = 1 << 20, maxAgeMs: Int64 = 86_400_000, dropOldest: Bool = false, keepAcknowledgedMs: Int64 = 0,
        clock: any SpoolClock = SystemSpoolClock()
    ) throws -> Spool {
        try Spool(dir: dir, limits: .init(maxBytes: maxBytes, maxAgeMs: maxAgeMs, dropOldest: dropOldest, keepAcknowledgedMs: keepAcknowledgedMs),
                  clock: clock, logger: logger)
    }

    /// Appends and waits until every entry is durable.
    func appendAll(_ entries: [SpoolEntry], to spool: Spool) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for entry in entries {
                let (stream, continuation) = AsyncStream.makeStream(of: Spool.AppendError?.self)
                try spool.append(entry) { continuation.yield($0) }
                group.addTask {
                    for await error in stream {
                        if let error { throw error }
                        return
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// A run that spooled `count` entries and shut down.
    func leaveEntries(_ count: Int) async throws {
        let spool = try open()
        try await appendAll((0..<count).map { entry($0) }, to: spool)
        spool.shutDown()
    }

    /// Changes the first segment's bytes on disk, as a failing disk (or another process) would.
    func damageFirstSegment(_ change: (inout [UInt8]) -> Void) throws {
        let path = SpoolFiles(dir: dir).segmentPath(1)
        var bytes = [UInt8](FileManager.default.contents(atPath: path)!)
        change(&bytes)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    func readAll(_ spool: Spool) -> [Spool.Item] {
        var all: [Spool.Item] = []
        while case let batch = spool.read(limit: 100), !batch.isEmpty { all += batch }
        return all
    }

    func segmentFiles() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasPrefix("segment-") }.sorted()
    }

    @Test func recordRoundTrip() {
        let original = SpoolEntry(topic: "gh/d/response/x", payload: [0, 1, 2, 255], retain: true, correlationData: [9, 8], receivedAt: -5)
        var bytes: [UInt8] = []
        SpoolRecord.encode(original, into: &bytes)
        #expect(SpoolRecord.decode(bytes[...]) == .entry(original, size: bytes.count))
        #expect(SpoolRecord.decode(bytes.dropLast()) == .incomplete)
        var flipped = bytes
        flipped[bytes.count - 1] ^= 1
        #expect(SpoolRecord.decode(flipped[...]) == .corrupt)
    }

    @Test func crcMatchesZlib() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
    }

    @Test func scanKeepsGoodRecordsAroundDamage() {
        var bytes: [UInt8] = []
        for index in 0..<5 { SpoolRecord.encode(entry(index), into: &bytes) }
        let recordSize = bytes.count / 5
        bytes[recordSize * 2 + 20] ^= 0xFF  // corrupt the third record's body
        let torn = Array(bytes.dropLast(3))  // and tear the last one
        let scan = SegmentScan(torn)
        #expect(scan.records.map(\.offset) == [0, recordSize, recordSize * 3])
        #expect(scan.damage == [.init(offset: recordSize * 2, length: recordSize), .init(offset: recordSize * 4, length: recordSize - 3)])
    }

    @Test func appendReadAcknowledgeInOrder() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let spool = try open()
        try await appendAll((0..<300).map { entry($0) }, to: spool)
        #expect(spool.stats().depth == 300)
        let read = readAll(spool)
        #expect(read.map(\.entry.payload) == (0..<300).map { entry($0).payload })
        #expect(spool.isCaughtUp)
        for item in read.reversed() { spool.acknowledge(item.ticket) }
        #expect(spool.isEmpty)
        spool.shutDown()
    }

    @Test func unacknowledgedEntriesSurviveARestart() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let spool = try open()
            try await appendAll((0..<10).map { entry($0) }, to: spool)
            let read = readAll(spool)
            for item in read.prefix(4) { spool.acknowledge(item.ticket) }
            spool.shutDown()  // saves the checkpoint
        }
        let reopened = try open()
        #expect(readAll(reopened).map(\.entry.payload) == (4..<10).map { entry($0).payload })
        reopened.shutDown()
    }

    /// A checkpoint or segment file numbered near `UInt64.max` (damage, or put there): the next segment's number would
    /// overflow and stop the gateway at every start. Both are ignored, and the spool opens with what it had.
    @Test func segmentNumbersNearTheTopAreIgnored() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await leaveEntries(3)
        try "\(UInt64.max) 0\n".write(toFile: dir + "/checkpoint", atomically: true, encoding: .utf8)
        for number in [UInt64.max, UInt64.max - 1, SpoolFiles.maxSegmentNumber] {
            FileManager.default.createFile(atPath: dir + "/segment-\(number).log", contents: Data([1, 2, 3]))
        }
        let reopened = try open()
        #expect(readAll(reopened).map(\.entry.payload) == (0..<3).map { entry($0).payload })
        try await appendAll([entry(3)], to: reopened)
        reopened.shutDown()
    }

    /// A damaged checkpoint costs duplicates, never entries: one naming a segment past every file would have deleted
    /// them all, and an offset inside a record would have skipped the records before it.
    @Test func aDamagedCheckpointRepeatsEntriesRatherThanDeletingThem() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await leaveEntries(5)
        for damaged in ["92 0", "1 7", "1 999999"] {
            try "\(damaged)\n".write(toFile: dir + "/checkpoint", atomically: true, encoding: .utf8)
            let reopened = try open()
            #expect(readAll(reopened).map(\.entry.payload) == (0..<5).map { entry($0).payload }, "checkpoint \(damaged)")
            reopened.shutDown()
        }
    }

    /// A durable record the disk damages while the gateway runs costs that record alone: the reader finds the next
    /// good one, as recovery does. (It skipped to the end of what was durable: 90 intact entries were lost.)
    @Test func aRecordDamagedWhileRunningCostsOnlyItself() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let spool = try open()
        try await appendAll((0..<100).map { entry($0) }, to: spool)
        try damageFirstSegment { bytes in
            let tenth = SegmentScan(bytes).records[10]
            bytes[tenth.offset + SpoolRecord.headerBytes + 2] ^= 0xFF
        }
        let read = readAll(spool)
        #expect(read.map(\.entry.payload) == (0..<100).filter { $0 != 10 }.map { entry($0).payload })
        #expect(spool.stats().dropped == 1)
        spool.shutDown()
    }

    /// A segment that cannot be read at start (here a directory where a file should be; on a failing disk, EIO)
    /// is set aside and the others are replayed: the spool opened only if every segment could be read.
    @Test func aSegmentThatCannotBeReadIsSetAsideAndTheOthersAreReplayed() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await leaveEntries(3)
        let unreadable = SpoolFiles(dir: dir).segmentPath(SpoolFiles.maxSegmentNumber - 1)
        try FileManager.default.createDirectory(atPath: unreadable, withIntermediateDirectories: false)
        let reopened = try open()
        #expect(readAll(reopened).map(\.entry.payload) == (0..<3).map { entry($0).payload })
        let names = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(names.contains { $0.hasPrefix((unreadable as NSString).lastPathComponent + ".unreadable-") })
        reopened.shutDown()
    }

    /// A box booted with a stale wall clock (3 days behind, after a power cut), spooled messages, then NTP stepped the
    /// clock: after a restart, in the same boot or after a reboot that followed more messages, none of them counts as
    /// days old (`max_age` 1 day). They were aged by their wall stamps alone, and expired.
    @Test(arguments: [false, true])
    func entriesStampedBeforeTheWallClockWasSteppedKeepTheirAgeAfterARestart(rebooted: Bool) async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let day: Int64 = 86_400_000
        let clock = ManualSpoolClock(wallMs: 1_750_000_000_000 - 3 * day)
        do {
            let spool = try open(maxAgeMs: day, clock: clock)
            try await appendAll((0..<3).map { entry($0, at: clock.now().wallMs) }, to: spool)
            clock.advance(ms: 60_000)
            clock.stepWall(ms: 3 * day)  // NTP
            try await appendAll([entry(3, at: clock.now().wallMs)], to: spool)
            spool.shutDown()
        }
        clock.advance(ms: 60_000)
        let restarted = rebooted ? ManualSpoolClock(wallMs: clock.now().wallMs, monotonicMs: 5_000, boot: "boot-2") : clock
        let reopened = try open(maxAgeMs: day, clock: restarted)
        let read = readAll(reopened)
        #expect(read.count == 4 && read.allSatisfy { !$0.expired })
        #expect(reopened.stats().oldestAgeMs < 10 * 60_000)
        reopened.shutDown()
    }

    /// A damaged record where a read starts: that read goes on past it rather than handing out nothing, which the
    /// replay would take for "everything read" and stop until the next append.
    @Test func aDamagedRecordWhereAReadStartsDoesNotEndTheRead() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let spool = try open()
        try await appendAll((0..<10).map { entry($0) }, to: spool)
        try damageFirstSegment { $0[0] ^= 0xFF }  // the first record's magic
        #expect(spool.read(limit: 100).map(\.entry.payload) == (1..<10).map { entry($0).payload })
        spool.shutDown()
    }

    /// A `clocks` line damaged on disk (a digit of its offset changed) is skipped, not read as a wrong clock that would
    /// age its segment's intact entries by it; the lines around it still count.
    @Test func aDamagedClocksLineIsSkipped() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let files = SpoolFiles(dir: dir)
        for segment in 1...3 { files.noteClock(SpoolFiles.SegmentClock(boot: "boot-1", offset: 1_750_000_000_000 + Int64(segment)), of: UInt64(segment)) }
        var bytes = try #require(FileManager.default.contents(atPath: files.clocksPath))
        let line2 = try #require(bytes.firstRange(of: Array("2 boot-1 1750000000002".utf8)))
        bytes[line2.upperBound - 4] = UInt8(ascii: "9")  // 1750000000002 → 1750000009002
        try bytes.write(to: URL(fileURLWithPath: files.clocksPath))
        #expect(files.readClocks() == [
            1: SpoolFiles.SegmentClock(boot: "boot-1", offset: 1_750_000_000_001), 3: SpoolFiles.SegmentClock(boot: "boot-1", offset: 1_750_000_000_003),
        ])
    }

    /// The `clocks` file keeps a line per segment still there: segments the broker confirmed take theirs along.
    @Test func theClocksFileKeepsOnlySegmentsStillThere() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let spool = try open(maxBytes: 64 << 10)
        for round in 0..<6 {
            try await appendAll((0..<40).map { entry(round * 40 + $0, topic: "t/dev/telemetry/\(String(repeating: "x", count: 100))") }, to: spool)
        }
        let files = SpoolFiles(dir: dir)
        #expect(files.segmentNumbers().count > 3)
        for item in readAll(spool) { spool.acknowledge(item.ticket) }
        spool.shutDown()  // after the deletions and the compaction queued on the spool's queue
        #expect(Set(files.readClocks().keys).isSubset(of: Set(files.segmentNumbers())))
        #expect(files.readClocks().count <= files.segmentNumbers().count)
    }

    @Test func entriesAfterAFullyAcknowledgedRunSurviveACrash() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let spool = try open()
            try await appendAll((0..<10).map { entry($0) }, to: spool)
            for item in readAll(spool) { spool.acknowledge(item.ticket) }
            spool.shutDown()  // checkpoint: end of the first segment
        }
        do {
            let crashed = try open()  // everything was acknowledged: nothing to replay
            #expect(crashed.isEmpty)
            try await appendAll((10..<15).map { entry($0) }, to: crashed)
            // No shutDown: the process dies here.
        }
        let reopened = try open()
        #expect(readAll(reopened).map(\.entry.payload) == (10..<15).map { entry($0).payload })
        reopened.shutDown()
    }

    @Test func truncatedAndCorruptSegmentsAreRepaired() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let spool = try open()
            try await appendAll((0..<10).map { entry($0) }, to: spool)
            spool.shutDown()
        }
        let path = dir + "/" + segmentFiles()[0]
        var bytes = Array(FileManager.default.contents(atPath: path)!)
        let recordSize = bytes.count / 10
        bytes[recordSize * 5 + 3] ^= 0xFF  // a bad header in the sixth record
        bytes.removeLast(recordSize / 2)  // a torn last record
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))

        let reopened = try open()
        #expect(readAll(reopened).map(\.entry.payload) == [0, 1, 2, 3, 4, 6, 7, 8].map { entry($0).payload })
        reopened.shutDown()
    }

    @Test func fullSpoolRefusesOrDropsOldest() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let big = { (index: Int) in SpoolEntry(topic: "t", payload: [UInt8](repeating: UInt8(index), count: 1000), receivedAt: 1) }
        let spool = try open(maxBytes: 64 << 10)
        var accepted = 0
        for index in 0..<100 {
            do {
                try spool.append(big(index)) { _ in }
                accepted += 1
            } catch {
                #expect(accepted > 50, "refused too early")
                break
            }
        }
        #expect(accepted < 100)
        spool.shutDown()
        try FileManager.default.removeItem(atPath: dir)

        let dropping = try open(maxBytes: 64 << 10, dropOldest: true)
        for chunk in stride(from: 0, to: 200, by: 5) { try await appendAll((chunk..<chunk + 5).map(big), to: dropping) }
        let stats = dropping.stats()
        #expect(stats.dropped > 0 && stats.depth + stats.dropped == 200 && stats.bytes <= 64 << 10)
        let kept = readAll(dropping).map { Int($0.entry.payload[0]) }
        #expect(kept == Array((200 - kept.count)..<200), "the newest entries are kept, in order")
        dropping.shutDown()
    }

    @Test func acknowledgedSegmentsAreDeleted() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let spool = try open(maxBytes: 64 << 10)  // 8 KiB segments
        let entries = (0..<400).map { entry($0) }
        for chunk in stride(from: 0, to: 400, by: 50) { try await appendAll(Array(entries[chunk..<chunk + 50]), to: spool) }
        #expect(segmentFiles().count > 2)
        for item in readAll(spool) { spool.acknowledge(item.ticket) }
        #expect(spool.isEmpty)
        spool.shutDown()  // waits for the spool's queue, where segments are unlinked
        #expect(segmentFiles().count == 1, "only the segment being written remains: \(segmentFiles())")
    }
}

/// The spool when the disk refuses, and what it keeps for the embedded broker's unsaved window.
@Suite struct SpoolKeepingTests {
    let dir = NSTemporaryDirectory() + "gatehouse-spool-keep-\(UInt64.random(in: 0...UInt64.max))"

    func open(keepAcknowledgedMs: Int64 = 11_000, clock: ManualSpoolClock) throws -> Spool {
        try Spool(dir: dir, limits: .init(maxBytes: 1 << 20, maxAgeMs: 86_400_000, dropOldest: false, keepAcknowledgedMs: keepAcknowledgedMs),
              clock: clock, logger: Logger(label: "spool-keep-test"))
    }

    func entry(_ index: Int) -> SpoolEntry {
        SpoolEntry(topic: "t/d/telemetry", payload: Array("\(index)".utf8), receivedAt: 0)
    }

    /// Appends with `appendPublished` (as the outbox does in write-ahead mode); returns the tickets once durable.
    func appendPublished(_ range: Range<Int>, to spool: Spool) async throws -> [Spool.Ticket] {
        var tickets: [Spool.Ticket] = []
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in range {
                let (stream, continuation) = AsyncStream.makeStream(of: Spool.AppendError?.self)
                tickets.append(try #require(try spool.appendPublished(entry(index)) { continuation.yield($0) }))
                group.addTask { for await error in stream { if let error { throw error }; return } }
            }
            try await group.waitForAll()
        }
        return tickets
    }

    func readAll(_ spool: Spool) -> [Spool.Item] {
        var all: [Spool.Item] = []
        while case let batch = spool.read(limit: 100), !batch.isEmpty { all += batch }
        return all
    }

    @Test func writtenAheadEntriesAreSkippedKeptAfterTheirAckAndReadAgainAfterARewind() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clock = ManualSpoolClock()
        let spool = try open(clock: clock)
        let tickets = try await appendPublished(0..<20, to: spool)
        #expect(readAll(spool).isEmpty, "published by the outbox itself: the reader skips them")
        #expect(spool.isCaughtUp)
        for ticket in tickets { spool.acknowledge(ticket) }
        clock.advance(ms: 5_000)
        spool.housekeeping()
        #expect(spool.stats().depth == 20, "kept for the broker's unsaved window")
        // The broker is lost: everything kept is read again, in order, and earlier tickets are void.
        spool.rewind()
        #expect(!spool.isCaughtUp && !spool.isCurrent(tickets[0]))
        let again = readAll(spool)
        #expect(again.map(\.entry.payload) == (0..<20).map { entry($0).payload })
        spool.acknowledge(tickets[0])  // a late PUBACK from before the rewind changes nothing
        for item in again { spool.acknowledge(item.ticket) }
        clock.advance(ms: 10_000)
        spool.housekeeping()
        #expect(spool.stats().depth == 20)
        clock.advance(ms: 1_001)
        spool.housekeeping()
        #expect(spool.isEmpty)
        spool.shutDown()
    }

    @Test func keptEntriesSurviveACrashAndGoAfterACleanBrokerStop() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clock = ManualSpoolClock()
        do {
            let spool = try open(clock: clock)
            for ticket in try await appendPublished(0..<10, to: spool) { spool.acknowledge(ticket) }
            // The process dies (a power cut): the broker may not have saved them.
        }
        let afterCrash = try open(clock: clock)
        #expect(readAll(afterCrash).map(\.entry.payload) == (0..<10).map { entry($0).payload })
        afterCrash.shutDown()
        // This time the broker stops cleanly after the gateway: its database has them, the spool lets go.
        do {
            let spool = try open(clock: clock)
            for item in readAll(spool) { spool.acknowledge(item.ticket) }
            spool.shutDown()
            spool.brokerSavedAll()
        }
        let reopened = try open(clock: clock)
        #expect(reopened.isEmpty && readAll(reopened).isEmpty)
        reopened.shutDown()
    }

    @Test func aMisconfiguredDirectoryStopsTheStartButAFullDiskWouldNot() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // The spool directory's place is taken by a file: the config is wrong, and the start says so.
        #expect(FileManager.default.createFile(atPath: dir, contents: Data("x".utf8)))
        #expect(throws: SpoolFiles.IOError.self) { try open(keepAcknowledgedMs: 0, clock: ManualSpoolClock()) }
        #expect(SpoolFiles.IOError("create", dir, errno: ENOTDIR).isMisconfiguration)
        #expect(!SpoolFiles.IOError("create", dir, errno: ENOSPC).isMisconfiguration)
        #expect(!SpoolFiles.IOError("write", dir, errno: EIO).isMisconfiguration)
    }
}
