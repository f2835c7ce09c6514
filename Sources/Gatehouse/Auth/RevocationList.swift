import Foundation

/// The revocation list in force, from successive readings of `auth.revoked_file`, failing closed
/// (PROTOCOL.md section 2): a file that cannot be read leaves the last list in force, a line that is not
/// UTF-8 is skipped while every other line counts, and a list that got shorter takes effect only when a
/// second reading at least `settleNanos` later finds the same list (a file being rewritten looks short for
/// a moment; additions apply at once). Pure state: the caller reads the file and logs the outcome.
struct RevocationList: Sendable {
    /// What one look at the file found.
    enum Reading: Sendable, Equatable {
        case missing
        case unreadable
        case contents([UInt8])
    }

    /// What changed with one reading, for the log and metrics.
    struct Outcome: Equatable {
        /// The entries in force changed.
        var changed = false
        /// 1-based numbers of the lines skipped because they are not UTF-8.
        var invalidLines: [Int] = []
        /// A shorter list was read; it waits for a second reading (the longer list stays meanwhile).
        var shrinkWaiting = false
    }

    /// Device ids and `jti`s in force.
    private(set) var entries: Set<String> = []
    /// Why the file could not be read at the last reading (`missing`, `unreadable`), or nil: the list in force
    /// is then the last one read.
    private(set) var unreadable: Reading?
    /// Whether a reading has found the file: a file missing from the start is an empty list, one missing
    /// after it existed is not.
    private var existed = false
    private var shrink: (entries: Set<String>, sinceNanos: UInt64)?
    private let settleNanos: UInt64

    init(settleNanos: UInt64 = 1_000_000_000) {
        self.settleNanos = settleNanos
    }

    /// A shorter list waits for confirmation: read the file again even if it did not change.
    var needsRereading: Bool { shrink != nil }

    /// Takes one reading of the file made at `nowNanos` (a monotonic clock).
    mutating func apply(_ reading: Reading, nowNanos: UInt64) -> Outcome {
        let before = entries
        var outcome = take(reading, nowNanos: nowNanos)
        outcome.changed = entries != before
        return outcome
    }

    private mutating func take(_ reading: Reading, nowNanos: UInt64) -> Outcome {
        var outcome = Outcome()
        guard case .contents(let bytes) = reading else {
            // Never read and not there: there is no list (yet). Anything else keeps the last list.
            unreadable = (reading == .missing && !existed) ? nil : reading
            return outcome
        }
        existed = true
        unreadable = nil
        let (read, invalidLines) = Self.parse(bytes)
        outcome.invalidLines = invalidLines
        if read.isSuperset(of: entries) {
            entries = read
            shrink = nil
        } else if let waiting = shrink, waiting.entries == read, nowNanos &- waiting.sinceNanos >= settleNanos {
            entries = read
            shrink = nil
        } else {
            if shrink?.entries != read { shrink = (read, nowNanos) }
            entries.formUnion(read)
            outcome.shrinkWaiting = true
        }
        return outcome
    }

    /// The entries of a revoked file: one per line, `#` starts a comment, blanks around are ignored; a line
    /// that is not valid UTF-8 is skipped (its number returned), so one bad byte cannot empty the list.
    static func parse(_ bytes: [UInt8]) -> (entries: Set<String>, invalidLines: [Int]) {
        var entries = Set<String>()
        var invalid: [Int] = []
        for (index, line) in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            guard let text = String(validating: line, as: UTF8.self) else {
                invalid.append(index + 1)
                continue
            }
            let entry = text.prefix { $0 != "#" }.trimmingCharacters(in: .whitespacesAndNewlines)
            if !entry.isEmpty { entries.insert(entry) }
        }
        return (entries, invalid)
    }
}
