/// `log`: `level` (`trace|debug|info|notice|warning|error|critical`, default `info`), `format` (`text`, or
/// `json`: one JSON object per line; default `text`).
public struct LogSection: Sendable {
    public var level: String
    public var format: String

    /// Reads `log.*` from `source`, recording problems there.
    public init(_ source: ConfigSource) {
        level = source.string("log.level", default: "info")
        let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
        if !levels.contains(level) {
            source.problem("log.level", "must be one of \(levels.joined(separator: ", "))")
        }
        format = source.string("log.format", default: "text")
        if !["text", "json"].contains(format) {
            source.problem("log.format", "must be text or json, got \"\(format)\"")
        }
    }
}
