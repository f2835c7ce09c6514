import CDispatch  // `timespec`'s members: which clang module "defines" them depends on how the compiler
import CoreFoundation  // batches files (MemberImportVisibility), so every module that may is imported
import Foundation
import Glibc

/// The two clocks the spool reads: the wall clock (Unix ms, written into records so that a later run can
/// age them) and a monotonic clock (ms since boot, which no NTP step moves). A seam for tests.
protocol SpoolClock: Sendable {
    func now() -> SpoolClockReading
    /// Which boot the monotonic clock counts from: offsets of one boot compare, those of two do not.
    var boot: String { get }
}

/// Both clocks read at one moment.
struct SpoolClockReading: Sendable, Equatable {
    var wallMs: Int64
    var monotonicMs: Int64

    /// Wall minus monotonic: constant while nobody steps the wall clock.
    var offset: Int64 { wallMs.subtractingSaturating(monotonicMs) }
}

/// The system's clocks: `CLOCK_REALTIME` and `CLOCK_BOOTTIME` (monotonic, and it keeps counting while the box
/// is suspended, so a suspended gateway's spool still ages).
struct SystemSpoolClock: SpoolClock {
    /// The kernel's id of this boot (empty where there is none: every run then counts as a boot of its own).
    static let bootID = (try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8))?
        .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""

    var boot: String { Self.bootID }

    func now() -> SpoolClockReading {
        var boot = timespec()
        clock_gettime(CLOCK_BOOTTIME, &boot)
        return SpoolClockReading(wallMs: nowMs(), monotonicMs: Int64(boot.tv_sec) * 1000 + Int64(boot.tv_nsec) / 1_000_000)
    }
}

/// How old a spooled entry is, for `spool.max_age`.
///
/// - An entry spooled by this run is aged by the monotonic clock: its record carries the wall time it was
///   spooled at, and its segment the offset between the two clocks at that moment (a segment holds entries of
///   one offset: a step of the wall clock starts a new segment). A step of the wall clock therefore never
///   changes the age of anything spooled in this run.
/// - An entry left by an earlier run is aged by the wall clock once, when the spool opens (its age then is
///   the wall time since it was spooled, at least 0), and by the monotonic clock from then on. A wall time
///   before 2020 on either side (a box without a real-time clock, before NTP) is not trusted: such an entry
///   counts as spooled when the spool opened. Its stamps are first moved onto the last wall clock of the boot
///   they were made in (`SegmentInfo.stampShift`), when the spool's `clocks` file says with which offset they
///   were made: a step of the wall clock during an earlier run of the same boot (NTP, after a box booted with a
///   stale clock) then makes none of them older either.
enum SpoolAge {
    /// Wall times before 2020-01-01 are not trusted.
    static let trustedWallFloorMs: Int64 = 1_577_836_800_000

    /// The age in ms of an entry stamped `stampMs`. `offset` is its segment's clock offset (nil for an earlier
    /// run's segment), `opened` the clocks when the spool opened.
    static func of(stampMs: Int64, offset: Int64?, now: SpoolClockReading, opened: SpoolClockReading) -> Int64 {
        if let offset {
            return now.monotonicMs.subtractingSaturating(stampMs.subtractingSaturating(offset))
        }
        let sinceOpen = now.monotonicMs.subtractingSaturating(opened.monotonicMs)
        guard stampMs >= trustedWallFloorMs, opened.wallMs >= trustedWallFloorMs else { return sinceOpen }
        return sinceOpen.addingSaturating(max(0, opened.wallMs.subtractingSaturating(stampMs)))
    }
}

extension SegmentInfo {
    /// The age of one of its records stamped `stamp` (`SpoolAge`).
    func age(ofStamp stamp: Int64, now: SpoolClockReading, opened: SpoolClockReading) -> Int64 {
        SpoolAge.of(stampMs: stamp.addingSaturating(stampShift), offset: clockOffset, now: now, opened: opened)
    }
}

// Records come from disk: no stamp may trap.
extension Int64 {
    func subtractingSaturating(_ other: Int64) -> Int64 {
        let (result, overflow) = subtractingReportingOverflow(other)
        return overflow ? (other < 0 ? .max : .min) : result
    }

    func addingSaturating(_ other: Int64) -> Int64 {
        let (result, overflow) = addingReportingOverflow(other)
        return overflow ? (other > 0 ? .max : .min) : result
    }
}
