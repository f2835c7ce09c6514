import GatehouseConfig
import ArgumentParser

/// A command-line duration: `500ms`, `10s`, `2m`, `1h`, `30d`, or a plain number of seconds (`1.5`).
struct DurationArgument: ExpressibleByArgument, Sendable, CustomStringConvertible {
    /// The length in milliseconds (rounded to the nearest millisecond).
    var milliseconds: Int64

    /// Creates a duration from milliseconds.
    init(milliseconds: Int64) {
        self.milliseconds = milliseconds
    }

    /// Parses the command-line text; nil (a usage error) for anything else.
    init?(argument: String) {
        guard let milliseconds = DurationText.milliseconds(argument) else { return nil }
        self.milliseconds = milliseconds
    }

    /// The value as a Swift `Duration`.
    var duration: Duration { .milliseconds(milliseconds) }

    /// Shortest readable form, e.g. `10s`, `1500ms`, `2m`.
    var description: String {
        let ms = milliseconds
        if ms != 0, ms % 86_400_000 == 0 { return "\(ms / 86_400_000)d" }
        if ms != 0, ms % 3_600_000 == 0 { return "\(ms / 3_600_000)h" }
        if ms != 0, ms % 60_000 == 0 { return "\(ms / 60_000)m" }
        if ms % 1000 == 0 { return "\(ms / 1000)s" }
        if ms > 1000 { return "\(Double(ms) / 1000)s" }
        return "\(ms)ms"
    }

    /// Shown in `--help` as the default value.
    var defaultValueDescription: String { description }
}
