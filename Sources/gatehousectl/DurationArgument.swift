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
        let text = argument.lowercased()
        let units: [(suffix: String, factor: Double)] = [
            ("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000),
        ]
        var number = Substring(text)
        var factor = 1000.0
        for unit in units where text.hasSuffix(unit.suffix) {
            number = text.dropLast(unit.suffix.count)
            factor = unit.factor
            break
        }
        guard !number.isEmpty,
            number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
            let value = Double(number), value.isFinite, value * factor < 9.0e15
        else { return nil }
        self.milliseconds = Int64((value * factor).rounded())
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
