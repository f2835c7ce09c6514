import ArgumentParser
import GatehouseProtocol
import Mosquitto

/// Broker connection options shared by every subcommand that talks to MQTT.
///
/// Each value comes from, in order: the flag, the environment variable, the gateway config file
/// (`--config` or `GATEHOUSE_CONFIG`), the default.
///
/// | flag | environment | config key | default |
/// |---|---|---|---|
/// | `--url` | `GATEHOUSE_MQTT_URL` | `mqtt.url` | `mqtt://127.0.0.1:1883` |
/// | `--username` | `GATEHOUSE_MQTT_USERNAME` | `mqtt.username` | none |
/// | `--password` | `GATEHOUSE_MQTT_PASSWORD` | `mqtt.password` | none |
/// | `--password-file` | `GATEHOUSE_MQTT_PASSWORD_FILE` | `mqtt.password_file` | none |
/// | `--base-topic` | `GATEHOUSE_MQTT_BASE_TOPIC` | `mqtt.base_topic` | `gatehouse` |
/// | `--ca-file` | `GATEHOUSE_MQTT_CA_FILE` | | OS trust store for `mqtts://` |
struct BrokerOptions: ParsableArguments {
    /// Broker URL.
    @Option(
        help: """
            Broker URL, mqtt://host:port or mqtts://host:port \
            (default: $GATEHOUSE_MQTT_URL, else mqtt.url, else mqtt://127.0.0.1:1883).
            """
    )
    var url: String?

    /// Broker user name.
    @Option(help: "Broker user name (default: $GATEHOUSE_MQTT_USERNAME, else mqtt.username).")
    var username: String?

    /// Broker password given inline.
    @Option(help: "Broker password (prefer --password-file; default: $GATEHOUSE_MQTT_PASSWORD).")
    var password: String?

    /// File holding the broker password.
    @Option(
        help: ArgumentHelp(
            "File holding the broker password (default: $GATEHOUSE_MQTT_PASSWORD_FILE, else mqtt.password_file).",
            valueName: "file"
        )
    )
    var passwordFile: String?

    /// The gateways' base topic.
    @Option(help: "MQTT base topic (default: $GATEHOUSE_MQTT_BASE_TOPIC, else mqtt.base_topic, else gatehouse).")
    var baseTopic: String?

    /// CA bundle for `mqtts://`.
    @Option(
        help: ArgumentHelp(
            "CA certificates (PEM) to verify an mqtts:// broker (default: $GATEHOUSE_MQTT_CA_FILE).",
            valueName: "file"
        )
    )
    var caFile: String?

    /// Skip the TLS host name check.
    @Flag(help: "Do not check that the broker certificate matches its host name (testing only).")
    var insecure = false

    /// The gateway's YAML config, to reuse its broker settings.
    @Option(
        help: ArgumentHelp(
            "The gateway's YAML config file, to read mqtt.* and auth.key_file from (default: $GATEHOUSE_CONFIG).",
            valueName: "file"
        )
    )
    var config: String?

    /// Connection settings and base topic after applying flags, environment and config file.
    func resolve(clientPrefix: String = "gatehousectl") throws -> ResolvedBroker {
        let file = try GatewayConfigFile.load(option: config)
        let url = url ?? Environment.value("GATEHOUSE_MQTT_URL") ?? file.mqttURL ?? "mqtt://127.0.0.1:1883"
        let clientID = "\(clientPrefix)-\(RandomID.hex(bytes: 6))"
        var options: MQTTClientOptions
        do {
            options = try MQTTClientOptions(url: url, clientID: clientID)
        } catch let error as MosquittoError {
            throw CtlError.usage(error.message)
        }
        if let username = username ?? Environment.value("GATEHOUSE_MQTT_USERNAME") ?? file.mqttUsername {
            options.username = username
        }
        if let password {
            options.password = password
        } else if let path = passwordFile ?? Environment.value("GATEHOUSE_MQTT_PASSWORD_FILE") {
            options.password = try SecretFile.text(path, what: "password file")
        } else if let password = Environment.value("GATEHOUSE_MQTT_PASSWORD") {
            options.password = password
        } else if let path = file.mqttPasswordFile {
            options.password = try SecretFile.text(path, what: "password file")
        } else if let password = file.mqttPassword {
            options.password = password
        }
        let caFile = caFile ?? Environment.value("GATEHOUSE_MQTT_CA_FILE")
        if caFile != nil || insecure {
            var tls = options.tls ?? MQTTTLSOptions()
            tls.caFile = caFile ?? tls.caFile
            tls.insecure = insecure
            options.tls = tls
        }
        let base = baseTopic ?? Environment.value("GATEHOUSE_MQTT_BASE_TOPIC") ?? file.baseTopic ?? "gatehouse"
        guard !base.isEmpty, !base.contains("+"), !base.contains("#"), !base.hasPrefix("/"), !base.hasSuffix("/")
        else {
            throw CtlError.usage("invalid base topic '\(base)': no wildcards (+ #) and no leading or trailing '/'")
        }
        return ResolvedBroker(options: options, topics: Topics(base: base))
    }
}

/// Where to connect and which topic tree to use.
struct ResolvedBroker: Sendable {
    /// libmosquitto connection options.
    var options: MQTTClientOptions
    /// Topic names under the base topic.
    var topics: Topics
}

/// Random identifiers for client ids, command ids and reply topics.
enum RandomID {
    /// `2 * bytes` lowercase hex digits.
    static func hex(bytes: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        var text = ""
        for _ in 0..<bytes {
            let byte = UInt8.random(in: 0...255, using: &generator)
            text += String(byte >> 4, radix: 16) + String(byte & 0xF, radix: 16)
        }
        return text
    }
}
