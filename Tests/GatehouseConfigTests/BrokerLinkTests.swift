import Mosquitto
import Testing

@testable import GatehouseConfig

/// `MQTTClientOptions(config:clientID:)`, the broker link of the gateway and of gatehousectl.
@Suite struct BrokerLinkTests {
    func options(_ mqtt: String, files: ConfigFiles, clientID: String? = nil) throws -> MQTTClientOptions {
        let yaml = "auth: {key_file: \(files.path("fleet.key"))}\nmqtt: \(mqtt)\n"
        return try MQTTClientOptions(config: GatewayConfig.load(ConfigSource(yamlText: yaml, environment: [:]), named: "test"), clientID: clientID)
    }

    @Test func theEmbeddedBrokerIsOnLoopback() throws {
        let files = try ConfigFiles()
        defer { files.remove() }
        let options = try options("{embedded_binary: /bin/sh, embedded_port: 18831, keepalive_s: 12, max_inflight: 7}", files: files)
        #expect(options.host == "127.0.0.1" && options.port == 18831 && options.tls == nil)
        #expect(options.keepalive == 12 && options.maxInflight == 7 && options.clientID == "gatehouse-gw-1")
        #expect(options.username == nil && options.password == nil && options.will == nil)
    }

    @Test func anExternalBrokerWithCredentials() throws {
        let files = try ConfigFiles()
        defer { files.remove() }
        let password = try files.write("password", "pw\n")
        let options = try options("{url: 'mqtt://broker.example:1884', username: gw, password_file: \(password), client_id: me}", files: files)
        #expect(options.host == "broker.example" && options.port == 1884)
        #expect(options.username == "gw" && options.password == "pw" && options.clientID == "me")
        #expect(try self.options("{url: 'mqtt://b'}", files: files, clientID: "ctl-1").clientID == "ctl-1")
    }

    @Test func nestedTLSKeysReachTheOptions() throws {
        let files = try ConfigFiles()
        defer { files.remove() }
        let (ca, cert, key) = (try files.write("ca.pem", "x"), try files.write("cert.pem", "x"), try files.write("key.pem", "x"))
        let options = try options("{url: 'mqtts://b', tls: {ca_file: \(ca), cert_file: \(cert), key_file: \(key)}}", files: files)
        #expect(options.port == 8883)
        #expect(options.tls?.caFile == ca && options.tls?.certFile == cert && options.tls?.keyFile == key && options.tls?.insecure == false)
        let flat = try self.options("{url: 'mqtt://b:8883', ca_file: \(ca)}", files: files)
        #expect(flat.tls?.caFile == ca)
        #expect(try self.options("{url: 'mqtts://b'}", files: files).tls?.caFile == nil)
    }

    @Test func anUnreadablePasswordFileIsThrown() throws {
        let files = try ConfigFiles()
        defer { files.remove() }
        var config = try GatewayConfig.load(ConfigSource(yamlText: files.baseYAML, environment: [:]), named: "test")
        config.mqtt.passwordFile = files.path("gone")
        #expect(throws: SecretFileError.self) { try MQTTClientOptions(config: config) }
    }
}
