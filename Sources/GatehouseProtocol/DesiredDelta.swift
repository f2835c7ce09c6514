/// The delta rule of PROTOCOL.md 7: what of the desired data D the reported data R does not match yet.
public enum DesiredDelta {
    /// For each key k of D: when D[k] and R[k] are both objects, their delta (only when not empty);
    /// otherwise D[k], when R has no k or R[k] is not the same JSON. Keys only R has are not in the delta.
    public static func compute(desired: JSONObject, reported: JSONObject) -> JSONObject {
        var delta = JSONObject()
        for (key, wanted) in desired {
            let actual = reported[key]
            if case .object(let wantedObject) = wanted, case .object(let actualObject)? = actual {
                let nested = compute(desired: wantedObject, reported: actualObject)
                if !nested.isEmpty { delta[key] = .object(nested) }
            } else if let actual, actual.isEquivalent(to: wanted) {
                continue
            } else {
                delta[key] = wanted
            }
        }
        return delta
    }
}
