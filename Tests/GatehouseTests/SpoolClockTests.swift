import Foundation
import Logging
import Testing

@testable import Gatehouse

/// `spool.max_age` against clock steps (issue 11, class 11), on a real spool with clocks set by hand.
@Suite struct SpoolClockTests {
    let dir = NSTemporaryDirectory() + "gatehouse-spool-clock-\(UInt64.random(in: 0...UInt64.max))"
    let hour: Int64 = 3_600_000

    func open(_ clock: ManualSpoolClock, maxAgeMs: Int64) throws -> Spool {
        try Spool(dir: dir, limits: .init(maxBytes: 1 << 20, maxAgeMs: maxAgeMs, dropOldest: false), clock: clock,
              logger: Logger(label: "spool-clock-test"))
    }

    func entry(_ index: Int) -> SpoolEntry {
        SpoolEntry(topic: "t/d/telemetry", payload: Array("\(index)".utf8), receivedAt: 0)
    }

    func appendDurably(_ entries: [SpoolEntry], to spool: Spool) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for entry in entries {
                let (stream, continuation) = AsyncStream.makeStream(of: Spool.AppendError?.self)
                try spool.append(entry) { continuation.yield($0) }
                group.addTask { for await error in stream { if let error { throw error }; return } }
            }
            try await group.waitForAll()
        }
    }

    func readAll(_ spool: Spool) -> [Spool.Item] {
        var all: [Spool.Item] = []
        while case let batch = spool.read(limit: 100), !batch.isEmpty { all += batch }
        return all
    }

    @Test func ageIsMonotonicWithinARunAndRuledOnceAtOpenForAnEarlierRun() {
        let opened = SpoolClockReading(wallMs: 1_750_000_000_000, monotonicMs: 1_000)
        // This run: the offset of its segment, whatever the wall clock says now.
        let stepped = SpoolClockReading(wallMs: opened.wallMs + 48 * hour, monotonicMs: 11_000)
        #expect(SpoolAge.of(stampMs: opened.wallMs + 500, offset: opened.offset, now: stepped, opened: opened) == 9_500)
        // An earlier run: the wall age at open (at least 0), then the monotonic clock.
        #expect(SpoolAge.of(stampMs: opened.wallMs - 60_000, offset: nil, now: stepped, opened: opened) == 70_000)
        #expect(SpoolAge.of(stampMs: opened.wallMs + 60_000, offset: nil, now: stepped, opened: opened) == 10_000)
        // A wall time before 2020 on either side is not trusted: counted from the open.
        #expect(SpoolAge.of(stampMs: 86_400_000, offset: nil, now: stepped, opened: opened) == 10_000)
        let untrusted = SpoolClockReading(wallMs: 3_600_000, monotonicMs: 1_000)
        #expect(SpoolAge.of(stampMs: opened.wallMs - 60_000, offset: nil, now: stepped, opened: untrusted) == 10_000)
        // Stamps from disk never trap.
        #expect(SpoolAge.of(stampMs: .min, offset: .max, now: stepped, opened: opened) >= 0)
        #expect(SpoolAge.of(stampMs: .max, offset: .min, now: stepped, opened: opened) <= 0)
    }

    @Test func aForwardStepOfTheWallClockExpiresNothingSpooledInThisRun() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clock = ManualSpoolClock()
        let spool = try open(clock, maxAgeMs: hour)
        try await appendDurably((0..<50).map(entry), to: spool)
        clock.stepWall(ms: 30 * 24 * hour)  // NTP corrects a clock a month behind
        try await appendDurably((50..<100).map(entry), to: spool)
        clock.advance(ms: 10 * 60_000)
        spool.housekeeping()
        #expect(spool.stats().depth == 100 && spool.stats().expired == 0)
        #expect(spool.stats().oldestAgeMs == 10 * 60_000)
        var first: [Spool.Item] = []
        while first.count < 60, case let batch = spool.read(limit: 60 - first.count), !batch.isEmpty { first += batch }
        #expect(first.count == 60 && first.allSatisfy { !$0.expired })
        // A step backwards does not make anything younger either: an hour later by the monotonic clock, it expires.
        clock.stepWall(ms: -90 * 24 * hour)
        clock.advance(ms: hour)
        let rest = readAll(spool)
        #expect(rest.count == 40 && rest.allSatisfy(\.expired))
        spool.shutDown()
    }

    @Test func theSweepDropsSegmentsByTheMonotonicClockOnly() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clock = ManualSpoolClock()
        let spool = try open(clock, maxAgeMs: hour)
        try await appendDurably((0..<10).map(entry), to: spool)
        clock.stepWall(ms: 365 * 24 * hour)
        try await appendDurably((10..<20).map(entry), to: spool)  // a new segment: the clock offset changed
        spool.housekeeping()
        #expect(spool.stats().depth == 20 && spool.stats().expired == 0)
        clock.advance(ms: hour + 1_000)
        try await appendDurably([entry(20)], to: spool)  // into the second segment (same clock offset)
        spool.housekeeping()
        // The first segment is dropped whole; in the second, still written to, the reader tells which are too old.
        #expect(spool.stats().expired == 10 && spool.stats().depth == 11)
        #expect(readAll(spool).map(\.expired) == Array(repeating: true, count: 10) + [false])
        spool.shutDown()
    }

    @Test func anEarlierRunsEntriesAreAgedByTheWallClockOnceAtOpen() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = ManualSpoolClock(wallMs: 1_750_000_000_000, monotonicMs: 900_000)
        do {
            let spool = try open(first, maxAgeMs: hour)
            try await appendDurably((0..<10).map(entry), to: spool)
            spool.shutDown()
        }
        // Restarted (a new boot: the monotonic clock starts again) 20 minutes later by the wall clock.
        let second = ManualSpoolClock(wallMs: 1_750_000_000_000 + 20 * 60_000, monotonicMs: 3_000, boot: "boot-2")
        let spool = try open(second, maxAgeMs: hour)
        #expect(spool.stats().oldestAgeMs == 20 * 60_000)
        second.stepWall(ms: 10 * 24 * hour)  // a step after the open changes nothing
        #expect(readAll(spool).allSatisfy { !$0.expired })
        spool.shutDown()
        // Opened again 2 hours after they were spooled: older than max_age.
        let third = ManualSpoolClock(wallMs: 1_750_000_000_000 + 2 * hour, monotonicMs: 3_000, boot: "boot-3")
        let late = try open(third, maxAgeMs: hour)
        let items = readAll(late)
        #expect(items.count == 10 && items.allSatisfy(\.expired))
        late.shutDown()
    }
}
