import Logging
import Mosquitto
import Foundation
import GatehouseProtocol

/// Everything the gateway reads from its YAML config file (and `GATEHOUSE_<SECTION>_<KEY>` variables).
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
        source.reportUnknownKeys()
    }

    /// Every key as read (`mqtt.url` → its text, or `-` when unset), to tell what a reload changed.
    public private(set) var values: [String: String] = [:]

    /// Loads and validates a config file; throws one error listing every problem.
    public static func load(file path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigError) -> GatewayConfig {
        let source = ConfigSource(file: path, environment: environment)
        var config = GatewayConfig(source: source)
        if !source.problems.isEmpty { throw ConfigError(file: path, problems: source.problems) }
        config.values = source.values
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

/// `gateway`: `id` (string, default `gw-1`), `listen` (`host:port`, default `0.0.0.0:8080`),
/// `heartbeat_s` (int, 30), `health_interval_s` (int, 10), `shutdown_grace_s` (int, 10),
/// `compression` (bool, true: negotiate permessage-deflate when a device offers it).
public struct GatewaySection: Sendable {
    public var id: String
    public var host: String
    public var port: Int
    public var heartbeatSeconds: Int
    public var healthIntervalSeconds: Int
    public var shutdownGraceSeconds: Int
    public var compression: Bool
    /// `gateway.tls`: devices connect with `wss://` when set.
    public var tls: TLSFiles?

    /// `gateway.tls.cert_file` and `key_file` (PEM; the chain may follow the certificate), and the optional
    /// `client_ca_file`: client certificates it signed, whose CN or a SAN is a device id, replace a token.
    public struct TLSFiles: Sendable {
        public var certFile: String
        public var keyFile: String
        public var clientCAFile: String?
    }

    init(_ source: ConfigSource) {
        id = source.string("gateway.id", default: "gw-1") ?? "gw-1"
        if !Identifiers.isValidGatewayID(id) {
            source.problem("gateway.id", "\"\(id)\" is not a valid gateway id (letters, digits, . _ -; at most 64)")
        }
        let listen = source.string("gateway.listen", default: "0.0.0.0:8080") ?? "0.0.0.0:8080"
        if let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) {
            host = String(listen[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
            self.port = port
        } else {
            source.problem("gateway.listen", "must be host:port, got \"\(listen)\"")
            host = "0.0.0.0"
            port = 8080
        }
        heartbeatSeconds = source.int("gateway.heartbeat_s", default: 30, in: 1...3600)
        healthIntervalSeconds = source.int("gateway.health_interval_s", default: 10, in: 1...3600)
        shutdownGraceSeconds = source.int("gateway.shutdown_grace_s", default: 10, in: 0...600)
        compression = source.bool("gateway.compression", default: true)
        let certFile = source.string("gateway.tls.cert_file")
        let keyFile = source.string("gateway.tls.key_file")
        let clientCAFile = source.string("gateway.tls.client_ca_file")
        for (key, file) in [("gateway.tls.cert_file", certFile), ("gateway.tls.key_file", keyFile), ("gateway.tls.client_ca_file", clientCAFile)] {
            if let file, !FileManager.default.isReadableFile(atPath: file) { source.problem(key, "cannot read \(file)") }
        }
        if let certFile, let keyFile {
            tls = TLSFiles(certFile: certFile, keyFile: keyFile, clientCAFile: clientCAFile)
        } else if certFile != nil || keyFile != nil || clientCAFile != nil {
            source.problem("gateway.tls.cert_file", "TLS needs both gateway.tls.cert_file and gateway.tls.key_file")
        }
    }
}

/// `mqtt`: `url` (an external broker), `base_topic` (`gatehouse`), `telemetry_qos` (0|1, 1),
/// `username`, `password_file`, `client_id` (default `gatehouse-<gateway id>`), `keepalive_s` (30),
/// `max_inflight` (in-flight QoS 1 window, 1000), `ca_file`, `cert_file`, `key_file` (TLS for `mqtts://`),
/// `embedded` (run a private mosquitto; the default when no `url` is given), `embedded_port` (1883),
/// `embedded_dir` (its config and persistence, `/var/lib/gatehouse/mosquitto`), `embedded_binary` (found on PATH).
public struct MQTTSection: Sendable {
    /// The broker the gateway connects to: `mqtt.url`, or the embedded broker's loopback address.
    public var url: String
    /// The private broker the gateway runs and supervises, when `mqtt.embedded`.
    public var embedded: EmbeddedBrokerSettings?
    public var baseTopic: String
    public var telemetryQoS: Int
    public var username: String?
    public var passwordFile: String?
    public var clientID: String?
    public var keepaliveSeconds: Int
    public var maxInflight: Int
    public var caFile: String?
    public var certFile: String?
    public var keyFile: String?

    init(_ source: ConfigSource) {
        let givenURL = source.string("mqtt.url")
        embedded = EmbeddedBrokerSettings(source, urlGiven: givenURL != nil)
        url = embedded.map { "mqtt://127.0.0.1:\($0.port)" } ?? givenURL ?? "mqtt://127.0.0.1:1883"
        if !(url.hasPrefix("mqtt://") || url.hasPrefix("mqtts://") || url.hasPrefix("tcp://")) {
            source.problem("mqtt.url", "must start with mqtt://, mqtts:// or tcp://, got \"\(url)\"")
        }
        baseTopic = source.string("mqtt.base_topic", default: "gatehouse") ?? "gatehouse"
        if baseTopic.isEmpty || baseTopic.contains(where: { "+#\0".contains($0) }) || baseTopic.hasPrefix("/") || baseTopic.hasSuffix("/") {
            source.problem("mqtt.base_topic", "must be a topic without + # or leading/trailing /, got \"\(baseTopic)\"")
        }
        telemetryQoS = source.int("mqtt.telemetry_qos", default: 1, in: 0...1)
        username = source.string("mqtt.username")
        passwordFile = source.string("mqtt.password_file")
        clientID = source.string("mqtt.client_id")
        keepaliveSeconds = source.int("mqtt.keepalive_s", default: 30, in: 5...3600)
        maxInflight = source.int("mqtt.max_inflight", default: 1000, in: 1...65535)
        // The flat `mqtt.ca_file` form is older; both are read, so neither is reported unknown.
        let (flatCA, flatCert, flatKey) = (source.string("mqtt.ca_file"), source.string("mqtt.cert_file"), source.string("mqtt.key_file"))
        caFile = source.string("mqtt.tls.ca_file") ?? flatCA
        certFile = source.string("mqtt.tls.cert_file") ?? flatCert
        keyFile = source.string("mqtt.tls.key_file") ?? flatKey
        for (key, file) in [("mqtt.tls.ca_file", caFile), ("mqtt.tls.cert_file", certFile), ("mqtt.tls.key_file", keyFile)] {
            if let file, !FileManager.default.isReadableFile(atPath: file) { source.problem(key, "cannot read \(file)") }
        }
        if (certFile == nil) != (keyFile == nil) {
            source.problem("mqtt.tls.cert_file", "a client certificate needs both cert_file and key_file")
        }
        if let passwordFile, !FileManager.default.isReadableFile(atPath: passwordFile) {
            source.problem("mqtt.password_file", "cannot read \(passwordFile)")
        }
    }
}

/// `mqtt.embedded*`: a private mosquitto on 127.0.0.1, for boxes without a broker of their own.
public struct EmbeddedBrokerSettings: Sendable {
    /// The mosquitto executable.
    public var binary: String
    /// Loopback port it listens on.
    public var port: Int
    /// Its generated config, pid file and persistence database.
    public var directory: String

    /// nil unless `mqtt.embedded` (default: true when `mqtt.url` is not given).
    init?(_ source: ConfigSource, urlGiven: Bool) {
        let enabled = source.bool("mqtt.embedded", default: !urlGiven)
        port = source.int("mqtt.embedded_port", default: 1883, in: 1...65535)
        directory = source.string("mqtt.embedded_dir", default: "/var/lib/gatehouse/mosquitto") ?? ""
        let binary = source.string("mqtt.embedded_binary") ?? Self.findOnPath("mosquitto", extra: ["/usr/sbin", "/usr/local/sbin"])
        guard enabled else { return nil }
        if urlGiven {
            source.problem("mqtt.embedded", "true runs a private broker on 127.0.0.1:\(port); remove mqtt.url, or set mqtt.embedded: false to use the broker at mqtt.url")
        }
        guard let binary, FileManager.default.isExecutableFile(atPath: binary) else {
            source.problem("mqtt.embedded", "no mosquitto executable\(binary.map { " at \($0)" } ?? " on PATH") (apt-get install mosquitto), or set mqtt.url to an existing broker")
            return nil
        }
        self.binary = binary
    }

    /// The first executable `name` in `$PATH` or `extra` (Debian puts mosquitto in /usr/sbin).
    static func findOnPath(_ name: String, extra: [String]) -> String? {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        return (path + extra).map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}

/// `auth`: `key_file` (the fleet HMAC key for tokens without `kid`), `key_files` (a mapping of key id →
/// key file, for tokens with that `kid`: several keys valid at once while rotating), `revoked_file`
/// (optional: device ids or `jti`s, one per line). At least one key is needed.
public struct AuthSection: Sendable {
    public var keyFile: String?
    public var keyFiles: [String: String]
    public var revokedFile: String?

    init(_ source: ConfigSource) {
        keyFiles = source.mapping("auth.key_files")
        let defaultKey = "/etc/gatehouse/fleet.key"
        keyFile = source.string("auth.key_file") ?? (keyFiles.isEmpty ? defaultKey : nil)
        revokedFile = source.string("auth.revoked_file")
        if let keyFile { Self.check(keyFile, key: "auth.key_file", source: source) }
        for (id, file) in keyFiles.sorted(by: { $0.key < $1.key }) { Self.check(file, key: "auth.key_files.\(id)", source: source) }
    }

    private static func check(_ file: String, key: String, source: ConfigSource) {
        if !FileManager.default.isReadableFile(atPath: file) {
            source.problem(key, "cannot read the fleet key \(file) (create one: head -c 32 /dev/urandom | base64 > \(file); chmod 600 \(file))")
        } else if (try? Data(contentsOf: URL(fileURLWithPath: file)))?.isEmpty ?? true {
            source.problem(key, "\(file) is empty")
        }
    }
}

/// `spool`: `dir` (default `/var/lib/gatehouse/spool`), `max_bytes` (256MiB), `max_age` (24h),
/// `when_full` (`reject`: nack `spool_full`, or `drop_oldest`).
public struct SpoolSection: Sendable {
    public var dir: String
    public var maxBytes: Int
    public var maxAgeSeconds: Int
    public var dropOldest: Bool

    init(_ source: ConfigSource) {
        dir = source.string("spool.dir", default: "/var/lib/gatehouse/spool") ?? ""
        maxBytes = source.int("spool.max_bytes", default: 256 << 20, in: (64 << 10)...(1 << 50), units: ConfigSource.byteUnits)
        maxAgeSeconds = source.int("spool.max_age", default: 86400, in: 1...(3650 * 86400), units: ConfigSource.secondUnits)
        let whenFull = source.string("spool.when_full", default: "reject") ?? "reject"
        dropOldest = whenFull == "drop_oldest"
        if !["reject", "drop_oldest"].contains(whenFull) {
            source.problem("spool.when_full", "must be reject or drop_oldest, got \"\(whenFull)\"")
        }
    }
}

/// `limits`: `max_message_bytes` (65536), `max_media_bytes` (4194304), `max_bad_messages` (100 per 60 s),
/// `max_connections` (19000), `max_connects_per_s` (500, whole gateway), `handshake_timeout_s` (10),
/// `max_messages_per_s` (500 per device), `max_bytes_per_s` (4MiB per device). Rates allow a burst of two
/// seconds' worth; 0 turns a rate limit off.
public struct LimitsSection: Sendable {
    public var maxMessageBytes: Int
    public var maxMediaBytes: Int
    public var maxBadMessages: Int
    public var maxConnections: Int
    public var maxConnectsPerSecond: Int
    public var handshakeTimeoutSeconds: Int
    public var maxMessagesPerSecond: Int
    public var maxBytesPerSecond: Int

    init(_ source: ConfigSource) {
        maxMessageBytes = source.int("limits.max_message_bytes", default: 65536, in: 256...(16 << 20), units: ConfigSource.byteUnits)
        maxMediaBytes = source.int("limits.max_media_bytes", default: 4 << 20, in: 1024...(64 << 20), units: ConfigSource.byteUnits)
        maxBadMessages = source.int("limits.max_bad_messages", default: 100, in: 1...1_000_000)
        maxConnections = source.int("limits.max_connections", default: 19000, in: 1...1_000_000)
        maxConnectsPerSecond = source.int("limits.max_connects_per_s", default: 500, in: 0...1_000_000)
        handshakeTimeoutSeconds = source.int("limits.handshake_timeout_s", default: 10, in: 1...3600)
        maxMessagesPerSecond = source.int("limits.max_messages_per_s", default: 500, in: 0...10_000_000)
        maxBytesPerSecond = source.int("limits.max_bytes_per_s", default: 4 << 20, in: 0...(1 << 40), units: ConfigSource.byteUnits)
    }
}

/// `commands`: `default_timeout_ms` (10000), `max_pending_per_device` (32).
public struct CommandsSection: Sendable {
    public var defaultTimeoutMs: Int
    public var maxPendingPerDevice: Int

    init(_ source: ConfigSource) {
        defaultTimeoutMs = source.int("commands.default_timeout_ms", default: 10000, in: 1...86_400_000)
        maxPendingPerDevice = source.int("commands.max_pending_per_device", default: 32, in: 1...10000)
    }
}

/// `homeassistant`: `enabled` (false), `prefix` (`homeassistant`, Home Assistant's discovery prefix).
public struct HomeAssistantSection: Sendable {
    public var enabled: Bool
    public var prefix: String

    init(_ source: ConfigSource) {
        enabled = source.bool("homeassistant.enabled", default: false)
        prefix = source.string("homeassistant.prefix", default: "homeassistant") ?? "homeassistant"
        if prefix.isEmpty || prefix.contains(where: { "+#\0".contains($0) }) {
            source.problem("homeassistant.prefix", "must be a topic without + or #, got \"\(prefix)\"")
        }
    }
}

/// `log`: `level` (`trace|debug|info|notice|warning|error|critical`, default `info`), `format` (`text`, or
/// `json`: one JSON object per line).
public struct LogSection: Sendable {
    public var level: String
    public var format: String

    init(_ source: ConfigSource) {
        level = source.string("log.level", default: "info") ?? "info"
        let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
        if !levels.contains(level) {
            source.problem("log.level", "must be one of \(levels.joined(separator: ", "))")
        }
        format = source.string("log.format", default: "text") ?? "text"
        if !["text", "json"].contains(format) {
            source.problem("log.format", "must be text or json, got \"\(format)\"")
        }
    }
}
