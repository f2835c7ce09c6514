import GatehouseProtocol

/// Folds two lines of reported state that grew from one base (a gateway cut off from the broker kept
/// acking patches while the device, or the broker's copy, moved on elsewhere) into one document, so that
/// neither line's reports are lost. Pure: no I/O, unit-tested.
enum StateMerge {
    /// The merge patch (RFC 7386) that turns `base` into `target`: changed and new members, and `null` for
    /// removed ones; nested objects are diffed member by member.
    static func diff(from base: JSONObject, to target: JSONObject) -> JSONObject {
        var patch = JSONObject()
        for (key, value) in target {
            guard let old = base[key] else { patch.updateValue(value, forKey: key); continue }
            if old == value { continue }
            if case .object(let oldObject) = old, case .object(let newObject) = value {
                patch.updateValue(.object(diff(from: oldObject, to: newObject)), forKey: key)
            } else {
                patch.updateValue(value, forKey: key)
            }
        }
        for key in base.keys where target[key] == nil { patch.updateValue(.null, forKey: key) }
        return patch
    }

    /// `base` with the changes of `older` applied first and those of `newer` on top: a member both lines
    /// changed ends as `newer` has it, a member only one line changed ends as that line has it.
    static func merge(base: JSONObject, older: JSONObject, newer: JSONObject) -> JSONObject {
        let withOlder = JSONValue.mergePatch(target: .object(base), patch: .object(diff(from: base, to: older)))
        let merged = JSONValue.mergePatch(target: withOlder, patch: .object(diff(from: base, to: newer)))
        return merged.objectValue ?? JSONObject()
    }
}
