import ArgumentParser
import GatehouseConfig
import GatehouseProtocol
import Mosquitto

/// Broker connection options shared by every subcommand that talks to MQTT.
///
/// Each value comes from, in order: the flag, then the gateway's config as the gateway reads it
/// (`GatehouseConfig`: the `GATEHOUSE_<SECTION>_<KEY>` variable, then the config file named by `--config` or
/// `GATEHOUSE_CONFIG`, then the key's default). Same keys, defaults and validation as the gateway.
///
/// | flag | environment | config key | default |
/// |---|---|---|---|
/// | `--url` | `GATEHOUSE_MQTT_URL` | `mqtt.url` | the embedded broker `mqtt://127.0.0.1:<mqtt.embedded_port>` |
/// | `--username` | `GATEHOUSE_MQTT_USERNAME` | `mqtt.username` | none |
/// | `--password` | `GATEHOUSE_MQTT_PASSWORD` | (none: the gateway reads only a file) | none |
/// | `--password-file` | `GATEHOUSE_MQTT_PASSWORD_FILE` | `mqtt.password_file` | none |
/// | `--base-topic` | `GATEHOUSE_MQTT_BASE_TOPIC` | `mqtt.base_topic` | `gatehouse` |
/// | `--ca-file` | `GATEHOUSE_MQTT_TLS_CA_FILE`, `GATEHOUSE_MQTT_CA_FILE` | `mqtt.tls.ca_file`, `mqtt.ca_file` | OS trust store for `mqtts://` |
///
/// The client certificate (`mqtt.tls.cert_file`, `key_file`), `mqtt.keepalive_s` and `mqtt.max_inflight` come
/// from the config too. Passwords: `--password`, `--password-file`, `$GATEHOUSE_MQTT_PASSWORD_FILE`,
/// `$GATEHOUSE_MQTT_PASSWORD`, `mqtt.password_file`, the first one given wins.
struct BrokerOptions: ParsableArguments {
    /// Broker URL.
    @Option(
        help: """
            Broker URL, mqtt://host:port or mqtts://host:port \
            (default: $GATEHOUSE_MQTT_URL, else mqtt.url, else the embedded broker on 127.0.0.1:mqtt.embedded_port, 1883).
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
            "CA certificates (PEM) to verify an mqtts:// broker (default: $GATEHOUSE_MQTT_TLS_CA_FILE, else mqtt.tls.ca_file).",
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
            "The gateway's YAML config file, to read mqtt.* and auth.key_file from, checked as the gateway checks it (default: $GATEHOUSE_CONFIG).",
            valueName: "file"
        )
    )
    var config: String?

    /// Connection settings and base topic after applying flags, environment and config file.
    func resolve(clientPrefix: String = "gatehousectl") throws -> ResolvedBroker {
        var config = try GatewayConfigFile.load(option: self.config).config
        if let url { config.mqtt.url = url }
        if let username { config.mqtt.username = username }
        if let caFile { config.mqtt.caFile = caFile }
        if let baseTopic {
            if let problem = MQTTSection.baseTopicProblem(baseTopic) { throw CtlError.usage("--base-topic: \(problem)") }
            config.mqtt.baseTopic = baseTopic
        }
        if let passwordFile { config.mqtt.passwordFile = passwordFile }
        let inlinePassword =
            password
            ?? (passwordFile == nil && Environment.value("GATEHOUSE_MQTT_PASSWORD_FILE") == nil
                ? Environment.value("GATEHOUSE_MQTT_PASSWORD") : nil)
        if inlinePassword != nil { config.mqtt.passwordFile = nil }
        var options: MQTTClientOptions
        do {
            options = try MQTTClientOptions(config: config, clientID: "\(clientPrefix)-\(RandomID.hex(bytes: 6))")
        } catch let error as MosquittoError {
            throw CtlError.usage(error.message)
        } catch let error as SecretFileError {
            throw CtlError.usage("cannot read password file \(error.path): \(error.reason)")
        }
        if let inlinePassword { options.password = inlinePassword }
        if insecure {
            var tls = options.tls ?? MQTTTLSOptions()
            tls.insecure = true
            options.tls = tls
        }
        return ResolvedBroker(options: options, topics: Topics(base: config.mqtt.baseTopic))
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
        Hex.encode((0..<bytes).map { _ in UInt8.random(in: 0...255) })
    }
}
