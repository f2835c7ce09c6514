import Foundation

/// `mqtt`: `url` (string, none: an external broker; without it the embedded broker, see
/// `EmbeddedBrokerSettings`), `base_topic` (string, `gatehouse`), `telemetry_qos` (0|1, 1), `username` (string,
/// none), `password_file` (path, none; read by the `SecretFile` rule), `client_id` (string, default
/// `gatehouse-<gateway id>`, see `GatewayConfig.mqttClientID`), `keepalive_s` (int, 30), `max_inflight` (int,
/// in-flight QoS 1 window, 1000), `tls.ca_file`, `tls.cert_file`, `tls.key_file` (paths, none: TLS for
/// `mqtts://`; the older flat `ca_file`, `cert_file`, `key_file` are read too, the `tls.` form wins).
/// `MQTTClientOptions(config:clientID:)` turns this section into the broker link's options.
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

    /// The broker when neither `mqtt.url` nor the embedded broker is configured (`mqtt.embedded: false`).
    public static let defaultURL = "mqtt://127.0.0.1:1883"

    /// Reads `mqtt.*` from `source`, recording problems there.
    public init(_ source: ConfigSource) {
        let givenURL = source.string("mqtt.url")
        embedded = EmbeddedBrokerSettings(source, urlGiven: givenURL != nil)
        url = embedded.map { "mqtt://127.0.0.1:\($0.port)" } ?? givenURL ?? Self.defaultURL
        if !(url.hasPrefix("mqtt://") || url.hasPrefix("mqtts://") || url.hasPrefix("tcp://")) {
            source.problem("mqtt.url", "must start with mqtt://, mqtts:// or tcp://, got \"\(url)\"")
        }
        baseTopic = source.string("mqtt.base_topic", default: "gatehouse")
        if let problem = Self.baseTopicProblem(baseTopic) { source.problem("mqtt.base_topic", problem) }
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
        source.checkReadable("mqtt.tls.ca_file", caFile)
        source.checkReadable("mqtt.tls.cert_file", certFile)
        source.checkReadable("mqtt.tls.key_file", keyFile)
        if (certFile == nil) != (keyFile == nil) {
            source.problem("mqtt.tls.cert_file", "a client certificate needs both cert_file and key_file")
        }
        source.checkReadable("mqtt.password_file", passwordFile)
    }

    /// Why `topic` cannot be a base topic (`+`, `#`, NUL, a leading or trailing `/`, or empty), or nil.
    public static func baseTopicProblem(_ topic: String) -> String? {
        if topic.isEmpty || topic.contains(where: { "+#\0".contains($0) }) || topic.hasPrefix("/") || topic.hasSuffix("/") {
            return "must be a topic without + # or leading/trailing /, got \"\(topic)\""
        }
        return nil
    }
}
