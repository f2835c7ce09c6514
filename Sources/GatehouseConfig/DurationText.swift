import Foundation

/// The one parser for durations people write, in the config (`spool.max_age: 24h`) and on the command
/// line (`--ttl 10m`): a decimal number followed by `ms`, `s`, `m`, `h` or `d`, or by nothing (then
/// `bareUnit` applies).
public enum DurationText {
    /// Units and their length in milliseconds, longest suffix first so `ms` is not read as `s`.
    public static let units: [(suffix: String, milliseconds: Double)] = [
        ("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000),
    ]

    /// The duration in milliseconds (rounded), or nil when the text is not a duration or is beyond
    /// about 285 years (so that adding it to a time cannot overflow).
    public static func milliseconds(_ text: String, bareUnit: String = "s") -> Int64? {
        let text = text.trimmingCharacters(in: .whitespaces).lowercased()
        var number = Substring(text)
        var factor = units.first { $0.suffix == bareUnit }?.milliseconds ?? 1000
        for unit in units where text.hasSuffix(unit.suffix) {
            number = text.dropLast(unit.suffix.count)
            factor = unit.milliseconds
            break
        }
        guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
              let value = Double(number), value.isFinite, value * factor < 9.0e15
        else { return nil }
        return Int64((value * factor).rounded())
    }
}
