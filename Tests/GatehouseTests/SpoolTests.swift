import Foundation
import Logging
import Testing

@testable import Gatehouse

/// The spool's file format, recovery and bookkeeping, on real files in a temporary directory.
@Suite struct SpoolTests {
    let dir = NSTemporaryDirectory() + "gatehouse-spool-\(UInt64.random(in: 0...UInt64.max))"
    let logger = Logger(label: "spool-test")

    func entry(_ index: Int, topic: String = "t/dev/telemetry", at time: Int64 = 1_000) -> SpoolEntry {
        SpoolEntry(topic: topic, payload: Array("{\"seq\":\(index)}".utf8), receivedAt: time)
    }

    func open(maxBytes: Int = 1 << 20, maxAgeMs: Int64 = 86_400_000, dropOldest: Bool = false) throws -> Spool {
        try Spool(dir: dir, limits: .init(maxBytes: maxBytes, maxAgeMs: maxAgeMs, dropOldest: dropOldest), logger: logger)
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

    func readAll(_ spool: Spool) -> [(ticket: Spool.Ticket, entry: SpoolEntry)] {
        var all: [(ticket: Spool.Ticket, entry: SpoolEntry)] = []
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
        #expect(spool.stats(now: 2_000).depth == 300)
        let read = readAll(spool)
        #expect(read.map(\.entry) == (0..<300).map { entry($0) })
        #expect(spool.isCaughtUp)
        for (ticket, _) in read.reversed() { spool.acknowledge(ticket) }
        #expect(spool.isEmpty)
        spool.shutDown()
    }

    @Test func unacknowledgedEntriesSurviveARestart() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let spool = try open()
            try await appendAll((0..<10).map { entry($0) }, to: spool)
            let read = readAll(spool)
            for (ticket, _) in read.prefix(4) { spool.acknowledge(ticket) }
            spool.shutDown()  // saves the checkpoint
        }
        let reopened = try open()
        #expect(readAll(reopened).map(\.entry) == (4..<10).map { entry($0) })
        reopened.shutDown()
    }

    @Test func entriesAfterAFullyAcknowledgedRunSurviveACrash() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let spool = try open()
            try await appendAll((0..<10).map { entry($0) }, to: spool)
            for (ticket, _) in readAll(spool) { spool.acknowledge(ticket) }
            spool.shutDown()  // checkpoint: end of the first segment
        }
        do {
            let crashed = try open()  // everything was acknowledged: nothing to replay
            #expect(crashed.isEmpty)
            try await appendAll((10..<15).map { entry($0) }, to: crashed)
            // No shutDown: the process dies here.
        }
        let reopened = try open()
        #expect(readAll(reopened).map(\.entry) == (10..<15).map { entry($0) })
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
        #expect(readAll(reopened).map(\.entry) == [0, 1, 2, 3, 4, 6, 7, 8].map { entry($0) })
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
        let stats = dropping.stats(now: 2)
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
        for (ticket, _) in readAll(spool) { spool.acknowledge(ticket) }
        #expect(spool.isEmpty)
        spool.shutDown()  // waits for the spool's queue, where segments are unlinked
        #expect(segmentFiles().count == 1, "only the segment being written remains: \(segmentFiles())")
    }
}
