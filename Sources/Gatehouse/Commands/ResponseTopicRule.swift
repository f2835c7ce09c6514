import GatehouseProtocol

/// PROTOCOL.md 5: a request's MQTT 5 Response Topic is honoured only when it has no wildcard and is not a
/// topic the contract gives to gateways or devices, so a requester cannot use a gateway to write where it
/// may not write itself.
enum ResponseTopicRule {
    /// The levels after `<base>/<dev>/` that belong to the contract (sections 4, 7 and 8).
    static let reservedLevels: Set<Substring> = [
        "telemetry", "state", "event", "meta", "availability", "media", "request", "set", "response", "pending",
        "desired", "delta", "live",
    ]

    /// Whether a response may be published to `topic` under `topics.base`.
    static func allows(_ topic: String, under topics: Topics) -> Bool {
        guard !topic.isEmpty, !topic.contains("+"), !topic.contains("#"), !topic.contains("\u{0}") else { return false }
        let prefix = topics.base + "/"
        guard topic.hasPrefix(prefix) else { return true }
        let levels = topic.dropFirst(prefix.count).split(separator: "/", omittingEmptySubsequences: false)
        if levels.first == "bridge" { return false }
        return !(levels.count >= 2 && reservedLevels.contains(levels[1]))
    }
}
