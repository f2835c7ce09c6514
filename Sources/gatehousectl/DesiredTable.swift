import GatehouseProtocol

/// `show`'s desired-state section: versions, then one row per key with the desired value, the reported
/// value and whether it is still pending.
struct DesiredTable {
    /// The retained `desired` document.
    var desired: JSONValue
    /// The retained `state` document, if any.
    var state: JSONValue?
    /// The retained `delta` document, if any.
    var delta: JSONValue?

    /// Prints the section.
    func print() {
        let wanted = desired["data"]?.objectValue ?? JSONObject()
        let reported = state?["data"]?.objectValue ?? JSONObject()
        let pending = delta?["data"]?.objectValue ?? JSONObject()
        var summary = "desired version \(desired["version"]?.serializedString() ?? "?")"
        summary += ", reported version \(state?["version"]?.serializedString() ?? "0")"
        if let delta {
            summary += pending.isEmpty ? ", in sync" : ", \(pending.count) pending"
            if let ts = delta["ts"]?.numberValue?.int64Value { summary += " (delta of \(TimeText.iso8601(ms: ts)))" }
        }
        Output.line("")
        Output.line(summary)
        let rows = wanted.map { key, value -> [String] in
            [key, value.serializedString(), reported[key]?.serializedString() ?? "-", pending[key] == nil ? "" : "pending"]
        }
        Output.table(["KEY", "DESIRED", "REPORTED", ""], rows)
    }
}
