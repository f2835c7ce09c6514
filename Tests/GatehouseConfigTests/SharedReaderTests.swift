import Mosquitto
import Testing

@testable import GatehouseConfig

/// The gateway loads its config with every file checked; gatehousectl loads the same file through the same
/// reader with `checksFiles: false` (it reads only the files it needs). Both must read the same keys, values and
/// defaults and build the same broker link.
@Suite struct SharedReaderTests {
    func both(_ yaml: String, environment: [String: String] = [:]) throws -> (gateway: GatewayConfig, ctl: GatewayConfig) {
        let gateway = try GatewayConfig.load(ConfigSource(yamlText: yaml, environment: environment), named: "gateway")
        let ctl = try GatewayConfig.load(ConfigSource(yamlText: yaml, environment: environment, checksFiles: false), named: "ctl")
        return (gateway, ctl)
    }

    func expectSameLink(_ a: GatewayConfig, _ b: GatewayConfig) throws {
        let (x, y) = (try MQTTClientOptions(config: a, clientID: "c"), try MQTTClientOptions(config: b, clientID: "c"))
        #expect(x.host == y.host && x.port == y.port && x.username == y.username && x.password == y.password)
        #expect(x.keepalive == y.keepalive && x.maxInflight == y.maxInflight)
        #expect(x.tls?.caFile == y.tls?.caFile && x.tls?.certFile == y.tls?.certFile && x.tls?.keyFile == y.tls?.keyFile)
        #expect((x.tls == nil) == (y.tls == nil))
    }

    @Test func defaultsAreTheSame() throws {
        let files = try ConfigFiles()
        defer { files.remove() }
        let (gateway, ctl) = try both(files.baseYAML)
        #expect(gateway.values == ctl.values)
        #expect(gateway.mqtt.url == ctl.mqtt.url && gateway.mqtt.baseTopic == ctl.mqtt.baseTopic && ctl.mqtt.baseTopic == "gatehouse")
        #expect(gateway.auth.keyFile == ctl.auth.keyFile)
        try expectSameLink(gateway, ctl)
    }

    @Test func aFullConfigIsReadAlike() throws {
        let files = try ConfigFiles()
        defer { files.remove() }
        let (ca, password) = (try files.write("ca.pem", "x"), try files.write("pw", "secret\n"))
        let yaml = """
            gateway: {id: gw-7, listen: '127.0.0.1:9000'}
            mqtt: {url: 'mqtts://broker:8884', base_topic: site/a, username: u, password_file: \(password), tls: {ca_file: \(ca)}, keepalive_s: 15}
            auth: {key_file: \(files.path("fleet.key")), key_files: {k2: \(files.path("fleet.key"))}}
            limits: {max_message_bytes: 64KiB}
            """
        let (gateway, ctl) = try both(yaml, environment: ["GATEHOUSE_MQTT_USERNAME": "from-env"])
        #expect(gateway.values == ctl.values)
        #expect(ctl.mqtt.baseTopic == "site/a" && ctl.mqtt.username == "from-env" && ctl.mqtt.caFile == ca)
        #expect(ctl.auth.keyFiles == gateway.auth.keyFiles)
        try expectSameLink(gateway, ctl)
    }

    @Test func contentProblemsAreTheSameButFilesAreLeftToTheCLI() {
        let yaml = "mqtt: {url: 'mqtt://b', password: x, base_topic: '/a', password_file: /nonexistent}\nauth: {key_file: /nonexistent}"
        let gateway = ConfigSource(yamlText: yaml, environment: [:])
        let ctl = ConfigSource(yamlText: yaml, environment: [:], checksFiles: false)
        _ = (GatewayConfig(source: gateway), GatewayConfig(source: ctl))
        #expect(ctl.problems.sorted() == ["mqtt.base_topic: must be a topic without + # or leading/trailing /, got \"/a\"", "mqtt.password: unknown key"])
        #expect(Set(ctl.problems).isSubset(of: gateway.problems))
        #expect(gateway.problems.contains("mqtt.password_file: cannot read /nonexistent"))
        #expect(gateway.problems.contains { $0.hasPrefix("auth.key_file: cannot read the fleet key /nonexistent") })
    }

    @Test func theCLIFindsTheEmbeddedBrokerWithoutItsExecutable() throws {
        let (config, problems) = {
            let source = ConfigSource(yamlText: "mqtt: {embedded_port: 18832, embedded_binary: /nonexistent/mosquitto}", environment: [:], checksFiles: false)
            return (GatewayConfig(source: source), source.problems)
        }()
        #expect(problems.isEmpty && config.mqtt.url == "mqtt://127.0.0.1:18832")
    }
}
