import ArgumentParser
import Foundation
import GatehouseProtocol

/// The `--json` flag every subcommand offers.
struct OutputOptions: ParsableArguments {
    /// Print machine-readable JSON instead of tables and sentences.
    @Flag(help: "Print JSON (one object, array or line per result) instead of human-readable text.")
    var json = false
}

/// Writes results to stdout and diagnostics to stderr, unbuffered, so that output reaches a pipe line by line
/// (`watch` is read live by scripts and tests).
enum Output {
    /// Writes one line to stdout.
    static func line(_ text: String) {
        write(text + "\n", to: .standardOutput)
    }

    /// Writes one compact JSON value as a line to stdout.
    static func json(_ value: JSONValue) {
        line(value.serializedString())
    }

    /// Writes one line to stderr, prefixed with the program name.
    static func diagnostic(_ text: String) {
        write("gatehousectl: \(text)\n", to: .standardError)
    }

    /// Writes a note for people to stderr (progress such as `queued: ...`), keeping stdout for results.
    static func note(_ text: String) {
        write(text + "\n", to: .standardError)
    }

    /// Prints `rows` under `headers` as left-aligned columns separated by two spaces.
    static func table(_ headers: [String], _ rows: [[String]]) {
        for row in formatTable(headers, rows) {
            line(row)
        }
    }

    /// Lays out a table; the last column is not padded, so lines carry no trailing spaces.
    static func formatTable(_ headers: [String], _ rows: [[String]]) -> [String] {
        let all = [headers] + rows
        var widths = [Int](repeating: 0, count: headers.count)
        for row in all {
            for (index, cell) in row.enumerated() where index < widths.count {
                widths[index] = max(widths[index], cell.count)
            }
        }
        return all.map { row in
            var text = ""
            for (index, cell) in row.enumerated() {
                if index == row.count - 1 {
                    text += cell
                } else {
                    text += cell + String(repeating: " ", count: widths[index] - cell.count + 2)
                }
            }
            return text
        }
    }

    private static func write(_ text: String, to handle: FileHandle) {
        // A closed pipe (e.g. `| head`) must not crash the CLI; the write error is ignored.
        try? handle.write(contentsOf: Data(text.utf8))
    }
}

/// Time helpers shared by the subcommands; protocol timestamps are Unix milliseconds.
enum TimeText {
    /// Now, in Unix milliseconds.
    static func nowMs() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1000).rounded())
    }

    /// `2025-11-21T12:00:00Z` (whole seconds, UTC).
    static func iso8601(ms: Int64) -> String {
        var seconds = time_t(ms / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02dZ",
            Int(parts.tm_year) + 1900,
            Int(parts.tm_mon) + 1,
            Int(parts.tm_mday),
            Int(parts.tm_hour),
            Int(parts.tm_min),
            Int(parts.tm_sec)
        )
    }

    /// `14:03:07.412` in local time, for live output.
    static func timeOfDay(ms: Int64) -> String {
        var seconds = time_t(ms / 1000)
        var parts = tm()
        localtime_r(&seconds, &parts)
        return String(
            format: "%02d:%02d:%02d.%03d",
            Int(parts.tm_hour),
            Int(parts.tm_min),
            Int(parts.tm_sec),
            Int(ms % 1000)
        )
    }

    /// `3s ago`, `5m ago`, `2h ago`, `4d ago` relative to now.
    static func relative(ms: Int64) -> String {
        let seconds = max(0, (nowMs() - ms) / 1000)
        switch seconds {
        case ..<60: return "\(seconds)s ago"
        case ..<3600: return "\(seconds / 60)m ago"
        case ..<86400: return "\(seconds / 3600)h ago"
        default: return "\(seconds / 86400)d ago"
        }
    }
}

extension JSONValue {
    /// Builds an object value from ordered pairs, dropping nothing (absent values should be passed as `.null`).
    static func objectOf(_ pairs: [(String, JSONValue)]) -> JSONValue {
        .object(JSONObject(pairs))
    }

    /// A string value, or `null` when `text` is nil.
    static func string(orNull text: String?) -> JSONValue {
        text.map { .string($0) } ?? .null
    }

    /// An integer value, or `null` when `value` is nil.
    static func number(orNull value: Int64?) -> JSONValue {
        value.map { .number(JSONNumber($0)) } ?? .null
    }
}
