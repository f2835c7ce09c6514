import Foundation

/// Everything the gateway reads from its YAML config file (and `GATEHOUSE_<SECTION>_<KEY>` variables).
/// `gatehousectl` reads the same file through the same type, so both agree on every key and default.
public struct GatewayConfig: Sendable {
    /// `gateway.*`
    public var gateway: GatewaySection
    /// `mqtt.*`
    public var mqtt: MQTTSection
    /// `auth.*`
    public var auth: AuthSection
    /// `spool.*`
    public var spool: SpoolSection
    /// `limits.*`
    public var limits: LimitsSection
    /// `commands.*`
    public var commands: CommandsSection
    /// `log.*`
    public var log: LogSection
    /// `homeassistant.*`
    public var homeAssistant: HomeAssistantSection
    /// `live.*`
    public var live: LiveSection

    /// Reads every section; problems are collected in `source.problems`.
    public init(source: ConfigSource) {
        gateway = GatewaySection(source)
        mqtt = MQTTSection(source)
        auth = AuthSection(source)
        spool = SpoolSection(source)
        limits = LimitsSection(source)
        commands = CommandsSection(source)
        log = LogSection(source)
        homeAssistant = HomeAssistantSection(source)
        live = LiveSection(source)
        source.reportUnknownKeys()
        values = source.values
    }

    /// Every key as read (`mqtt.url` → its text, or `-` when unset), to tell what a reload changed.
    public private(set) var values: [String: String] = [:]

    /// The MQTT client id: `mqtt.client_id`, default `gatehouse-<gateway.id>`.
    public var mqttClientID: String { mqtt.clientID ?? "gatehouse-\(gateway.id)" }

    /// Loads and validates a config file; throws one error listing every problem.
    ///
    /// - Parameter checksFiles: false skips the checks that named files exist and can be read (see `ConfigSource`).
    public static func load(
        file path: String, environment: [String: String] = ProcessInfo.processInfo.environment, checksFiles: Bool = true
    ) throws(ConfigError) -> GatewayConfig {
        try load(ConfigSource(file: path, environment: environment, checksFiles: checksFiles), named: path)
    }

    /// Reads and validates `source`; throws one error listing every problem, each prefixed with `name`.
    public static func load(_ source: ConfigSource, named name: String) throws(ConfigError) -> GatewayConfig {
        let config = GatewayConfig(source: source)
        if !source.problems.isEmpty { throw ConfigError(file: name, problems: source.problems) }
        return config
    }
}

/// A config that cannot be used, with every problem found (each names its key).
public struct ConfigError: Error, CustomStringConvertible {
    /// The config file.
    public var file: String
    /// One line per problem: `key: what is wrong`.
    public var problems: [String]
    /// All problems, one per line, prefixed with the file.
    public var description: String { problems.map { "\(file): \($0)" }.joined(separator: "\n") }
}
