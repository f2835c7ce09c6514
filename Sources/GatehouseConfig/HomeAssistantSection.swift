/// `homeassistant`: `enabled` (bool, false), `prefix` (string, `homeassistant`: Home Assistant's discovery prefix),
/// `retain_snapshots` (bool, false: camera snapshots are published retained, so a restarted Home Assistant shows the
/// last one at once).
public struct HomeAssistantSection: Sendable {
    public var enabled: Bool
    public var prefix: String
    public var retainSnapshots: Bool

    /// Reads `homeassistant.*` from `source`, recording problems there.
    public init(_ source: ConfigSource) {
        enabled = source.bool("homeassistant.enabled", default: false)
        prefix = source.string("homeassistant.prefix", default: "homeassistant")
        retainSnapshots = source.bool("homeassistant.retain_snapshots", default: false)
        if prefix.isEmpty || prefix.contains(where: { "+#\0".contains($0) }) {
            source.problem("homeassistant.prefix", "must be a topic without + or #, got \"\(prefix)\"")
        }
    }
}
