/// `homeassistant`: `enabled` (bool, false), `prefix` (string, `homeassistant`: Home Assistant's discovery prefix).
public struct HomeAssistantSection: Sendable {
    public var enabled: Bool
    public var prefix: String

    /// Reads `homeassistant.*` from `source`, recording problems there.
    public init(_ source: ConfigSource) {
        enabled = source.bool("homeassistant.enabled", default: false)
        prefix = source.string("homeassistant.prefix", default: "homeassistant")
        if prefix.isEmpty || prefix.contains(where: { "+#\0".contains($0) }) {
            source.problem("homeassistant.prefix", "must be a topic without + or #, got \"\(prefix)\"")
        }
    }
}
