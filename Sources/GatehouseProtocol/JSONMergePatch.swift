extension JSONValue {
    /// Applies `patch` to `target` as a JSON Merge Patch (RFC 7386).
    ///
    /// An object patch merges into the target member by member: `null` removes a member,
    /// nested objects merge recursively, anything else replaces. A non-object target
    /// (or none) is treated as `{}` when the patch is an object. A non-object patch
    /// replaces the target entirely.
    ///
    /// - Parameters:
    ///   - target: the document to patch; `nil` when there is none yet.
    ///   - patch: the merge patch.
    /// - Returns: the patched document.
    public static func mergePatch(target: JSONValue?, patch: JSONValue) -> JSONValue {
        guard case .object(let patchObject) = patch else { return patch }
        var result: JSONObject
        if case .object(let targetObject)? = target {
            result = targetObject
        } else {
            result = JSONObject()
        }
        var removed = Set<String>()
        for (key, value) in patchObject {
            if value.isNull {
                removed.insert(key)
            } else {
                result.updateValue(mergePatch(target: result[key], patch: value), forKey: key)
            }
        }
        result.removeValues(forKeys: removed)
        return .object(result)
    }
}
