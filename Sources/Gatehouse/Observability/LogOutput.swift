import CoreFoundation  // declares `stat` (MemberImportVisibility)
import CDispatch  // so does this one, depending on how the compiler batches files (a full rebuild needs it)
import Foundation
import GatehouseProtocol
import Glibc
import Logging
import Synchronization

/// The gateway's log lines on stderr: `text` (one readable line; under systemd with a syslog priority prefix
/// and no timestamp, as journald adds its own) or `json` (one JSON object per line, for log shippers). The
/// level is shared by every logger and changes on reload.
public enum LogOutput {
    /// The current level; `reload` changes it for every logger at once.
    static let level = Atomic<Int>(Logger.Level.info.index)

    /// Installs the handler; call once, before the first logger is made.
    public static func bootstrap(level: String, format: String) {
        setLevel(level)
        let json = format == "json"
        let journald = stderrIsJournal(ProcessInfo.processInfo.environment["JOURNAL_STREAM"])
        LoggingSystem.bootstrap { label in LineLogHandler(label: label, json: json, journald: journald) }
    }

    /// Sets the level by name (`info`, `debug`…); unknown names are ignored (the config was validated).
    static func setLevel(_ name: String) {
        if let level = Logger.Level(rawValue: name) { self.level.store(level.index, ordering: .relaxed) }
    }

    /// systemd sets `JOURNAL_STREAM=<dev>:<inode>` for a service whose stderr is the journal; children may
    /// inherit it with their stderr elsewhere, so it counts only when it names our stderr.
    static func stderrIsJournal(_ variable: String?) -> Bool {
        guard let parts = variable?.split(separator: ":"), parts.count == 2,
              let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var info = Glibc.stat()
        guard fstat(2, &info) == 0 else { return false }
        return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode
    }

    static var currentLevel: Logger.Level { Logger.Level.allCases[level.load(ordering: .relaxed)] }
}

private struct LineLogHandler: LogHandler {
    let label: String
    let json: Bool
    let journald: Bool
    var metadata: Logger.Metadata = [:]

    var logLevel: Logger.Level {
        get { LogOutput.currentLevel }
        set { LogOutput.level.store(newValue.index, ordering: .relaxed) }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        let line = json
            ? jsonLine(event, merged)
            : textLine(event, merged)
        var bytes = Array(line.utf8)
        bytes.withUnsafeMutableBytes { _ = Glibc.write(2, $0.baseAddress, $0.count) }
    }

    private func textLine(_ event: LogEvent, _ metadata: Logger.Metadata) -> String {
        let fields = metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        // One event, one line: a newline inside (from a device's text, say) cannot start a forged line.
        let text = "\(event.level) \(label):\(fields.isEmpty ? "" : " " + fields) \(event.message)"
        let body = text.replacingOccurrences(of: "\n", with: "\\n") + "\n"
        // journald stamps lines itself and reads `<N>` as the syslog priority.
        return journald ? "<\(event.level.syslogPriority)>" + body : "\(Self.timestamp()) " + body
    }

    private func jsonLine(_ event: LogEvent, _ metadata: Logger.Metadata) -> String {
        var object = JSONObject([
            ("ts", .string(Self.timestamp())),
            ("level", .string(event.level.rawValue)),
            ("label", .string(label)),
            ("message", .string("\(event.message)")),
            ("source", .string(event.source)),
        ])
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) where object[key] == nil {
            object[key] = value.json
        }
        return JSONValue.object(object).serializedString() + "\n"
    }

    /// ISO 8601 in UTC with milliseconds.
    private static func timestamp() -> String {
        Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
    }
}

extension Logger.Level {
    fileprivate var index: Int { Logger.Level.allCases.firstIndex(of: self)! }

    fileprivate var syslogPriority: Int {
        switch self {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }
}

extension Logger.MetadataValue {
    fileprivate var json: JSONValue {
        switch self {
        case .string(let text): .string(text)
        case .stringConvertible(let value): .string(value.description)
        case .array(let values): .array(values.map(\.json))
        case .dictionary(let values): .object(JSONObject(values.sorted { $0.key < $1.key }.map { ($0.key, $0.value.json) }))
        }
    }
}
