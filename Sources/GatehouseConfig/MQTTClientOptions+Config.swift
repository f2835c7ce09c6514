import Mosquitto

extension MQTTClientOptions {
    /// The broker link `config` describes, for the gateway and `gatehousectl` alike: `mqtt.url` (the embedded
    /// broker's loopback address when `mqtt.embedded`), `mqtt.keepalive_s`, `mqtt.max_inflight`, `mqtt.username`,
    /// the password from `mqtt.password_file` (by the `SecretFile` rule), and TLS from `mqtt.tls.*` (or the flat
    /// `mqtt.ca_file`, `cert_file`, `key_file`): set when the URL is `mqtts://` or a CA or client certificate is
    /// given. No will: that is the gateway's.
    ///
    /// - Parameter clientID: the MQTT client id; default `config.mqttClientID`.
    /// - Throws: `MosquittoError` (`.invalidURL`) when libmosquitto cannot use `mqtt.url`; `SecretFileError`
    ///   when `mqtt.password_file` cannot be read.
    public init(config: GatewayConfig, clientID: String? = nil) throws {
        try self.init(url: config.mqtt.url, clientID: clientID ?? config.mqttClientID)
        keepalive = config.mqtt.keepaliveSeconds
        maxInflight = config.mqtt.maxInflight
        if let username = config.mqtt.username { self.username = username }
        if let file = config.mqtt.passwordFile { password = try SecretFile.text(atPath: file) }
        if config.mqtt.caFile != nil || config.mqtt.certFile != nil || tls != nil {
            tls = MQTTTLSOptions(caFile: config.mqtt.caFile, certFile: config.mqtt.certFile, keyFile: config.mqtt.keyFile)
        }
    }
}
