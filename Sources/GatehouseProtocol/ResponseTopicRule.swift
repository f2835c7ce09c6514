extension Topics {
    /// The levels under `<base>/<dev>/` that the contract gives to gateways and devices (§4, §7, §8).
    static let deviceLevels: Set<Substring> = [
        "telemetry", "state", "event", "meta", "availability", "media", "request", "set", "response", "pending",
        "desired", "delta",
    ]

    /// Whether the gateway may publish a response to a requester's MQTT 5 Response Topic: not a wildcard,
    /// not a `$` topic, and not a topic the contract gives to gateways or devices (`<base>/bridge/…`,
    /// `<base>/<dev>/<level>…`, and Home Assistant's under its discovery prefix, §6). The gateway publishes with its
    /// own broker credentials, so without this a requester could make it write where the requester may not (a
    /// confused deputy).
    public func isAllowedResponseTopic(_ topic: String) -> Bool {
        guard !topic.isEmpty, !topic.hasPrefix("$"), !topic.contains(where: { $0 == "+" || $0 == "#" || $0 == "\0" }) else {
            return false
        }
        if let homeAssistantPrefix, topic == homeAssistantPrefix || topic.hasPrefix(homeAssistantPrefix + "/") { return false }
        let prefix = base + "/"
        guard topic.hasPrefix(prefix) else { return true }
        let levels = topic.dropFirst(prefix.count).split(separator: "/", omittingEmptySubsequences: false)
        if levels.first == "bridge" { return false }
        return levels.count < 2 || !Self.deviceLevels.contains(levels[1])
    }
}
