import GatehouseProtocol
import Synchronization

/// What a reload may change while devices stay connected (`limits.*`, `homeassistant.*`, `log.level`),
/// as one immutable object: a connection keeps a reference and hands it on per message without copying.
/// Everything else is fixed at startup and handed to components as they are built.
final class LiveSettings: Sendable {
    let limits: LimitsSection
    /// Home Assistant discovery, when `homeassistant.enabled`.
    let homeAssistant: HomeAssistantDiscovery?
    let logLevel: String
    /// The config these came from, to tell what the next reload changes.
    let config: GatewayConfig
    /// Moves on every reload (see `SettingsStore.refresh`).
    let generation: UInt64

    init(_ config: GatewayConfig, generation: UInt64 = 0) {
        self.config = config
        self.generation = generation
        limits = config.limits
        logLevel = config.log.level
        homeAssistant = config.homeAssistant.enabled
            ? HomeAssistantDiscovery(prefix: config.homeAssistant.prefix, gateway: config.gateway.id, topics: Topics(base: config.mqtt.baseTopic),
                                     retainSnapshots: config.homeAssistant.retainSnapshots)
            : nil
    }
}

/// The live settings in force: the only place they are kept. Code on the message path keeps its own copy
/// and calls `refresh` per message: one atomic load, and the lock only after a reload.
final class SettingsStore: Sendable {
    private let current: Mutex<LiveSettings>
    private let generation = Atomic<UInt64>(0)

    init(_ config: GatewayConfig) {
        current = Mutex(LiveSettings(config))
    }

    /// The settings in force now.
    var now: LiveSettings { current.withLock { $0 } }

    /// `cached` while no reload happened since it was taken, else the settings in force now.
    func refresh(_ cached: LiveSettings) -> LiveSettings {
        generation.load(ordering: .acquiring) == cached.generation ? cached : now
    }

    /// Puts `config`'s live settings in force; returns the previous ones.
    func replace(with config: GatewayConfig) -> LiveSettings {
        current.withLock { settings in
            let previous = settings
            settings = LiveSettings(config, generation: previous.generation &+ 1)
            generation.store(settings.generation, ordering: .releasing)
            return previous
        }
    }
}
