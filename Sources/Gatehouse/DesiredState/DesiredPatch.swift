import GatehouseProtocol

/// Decides one `desired/set` (PROTOCOL.md 7) against the current document, without I/O: the new document,
/// or the rejection with its code. Checks in the order of the contract's list: `version_conflict`,
/// `bad_params`, `too_big` (`bad_request` is decided while parsing).
enum DesiredPatch {
    /// The outcome of applying a patch.
    enum Outcome: Equatable {
        /// The new document to publish (version raised by exactly one).
        case accepted(DesiredDocument)
        /// Nothing changes; the answer is `rejected` with this code.
        case rejected(CommandErrorCode, String)
    }

    /// Applies `request` to `current` (nil: no document, version 0).
    static func apply(_ request: DesiredPatchRequest, to current: DesiredDocument?, capabilities: Capabilities,
                      maxBytes: Int, now: Int64) -> Outcome {
        let version = current?.version ?? 0
        if let expected = request.version, expected != version {
            return .rejected(.versionConflict, "the desired document is at version \(version), not \(expected)")
        }
        // Versions only grow: at the top of Int64 there is no next one, and wrapping around would roll back.
        guard version < Int64.max else {
            return .rejected(.versionConflict, "the desired document is at the highest version; clear it with an empty retained message")
        }
        if case .badParams(let message) = capabilities.check(statePatch: request.data) {
            return .rejected(.badParams, message)
        }
        let data = (current?.data ?? JSONObject()).merging(patch: request.data)
        let size = JSONValue.object(data).serialized().count
        if size > maxBytes {
            return .rejected(.tooBig, "the desired data would be \(size) bytes, more than limits.max_desired_bytes \(maxBytes)")
        }
        return .accepted(DesiredDocument(ts: now, version: version + 1, data: data))
    }

    /// Which gateway applies a device's patches: the one holding it; when no gateway holds it, the online
    /// gateway with the smallest id (a shared subscription would hand one device's patches to several).
    static func isApplier(myself: String, holdsDevice: Bool, otherHolder: String?, onlineGateways: Set<String>) -> Bool {
        if holdsDevice { return true }
        if otherHolder != nil { return false }
        return onlineGateways.union([myself]).min() == myself
    }
}
