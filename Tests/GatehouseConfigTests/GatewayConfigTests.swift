import Testing

@testable import GatehouseConfig

@Suite struct GatewayConfigTests {
    func config(_ yaml: String, environment: [String: String] = [:]) -> (GatewayConfig, [String]) {
        let source = ConfigSource(yamlText: yaml, environment: environment)
        let config = GatewayConfig(source: source)
        return (config, source.problems.filter { !$0.hasPrefix("auth.key_file") })
    }

    @Test func withoutAURLTheBrokerIsEmbedded() throws {
        let (config, problems) = config("mqtt: {embedded_port: 18830, embedded_binary: /bin/sh}")
        #expect(problems.isEmpty)
        let embedded = try #require(config.mqtt.embedded)
        #expect(embedded.port == 18830 && embedded.binary == "/bin/sh")
        #expect(config.mqtt.url == "mqtt://127.0.0.1:18830")
    }

    @Test func aURLMeansAnExternalBroker() {
        let (config, problems) = config("", environment: ["GATEHOUSE_MQTT_URL": "mqtt://10.1.2.3:1883"])
        #expect(problems.isEmpty && config.mqtt.embedded == nil && config.mqtt.url == "mqtt://10.1.2.3:1883")
    }

    @Test func embeddedTogetherWithAURLIsAProblem() {
        let (_, problems) = config("mqtt: {url: 'mqtt://10.1.2.3:1883', embedded: true}")
        #expect(problems.count == 1 && problems[0].hasPrefix("mqtt.embedded: true runs a private broker"))
    }

    @Test func notEmbeddedAndNoURLIsTheLocalBroker() {
        let (config, problems) = config("mqtt: {embedded: false}")
        #expect(problems.isEmpty && config.mqtt.url == MQTTSection.defaultURL)
    }

    @Test func logFormatIsTextOrJSON() {
        #expect(config("log: {format: json}").0.log.format == "json")
        #expect(config("").0.log.format == "text")
        #expect(config("log: {format: xml}").1 == ["log.format: must be text or json, got \"xml\""])
    }

    @Test func valuesRecordEveryKeyAsRead() {
        let source = ConfigSource(yamlText: "limits: {max_messages_per_s: 7}", environment: ["GATEHOUSE_LOG_LEVEL": "debug"])
        let config = GatewayConfig(source: source)
        #expect(source.values["limits.max_messages_per_s"] == "7")
        #expect(source.values["log.level"] == "debug")
        #expect(source.values["mqtt.url"] == "-")
        #expect(config.limits.maxMessagesPerSecond == 7)
        #expect(config.values == source.values)
    }

    @Test func defaultsWhenEmpty() {
        let (config, problems) = config("mqtt: {embedded_binary: /bin/sh}")
        #expect(problems.isEmpty)
        #expect(config.gateway.id == "gw-1" && config.gateway.host == "0.0.0.0" && config.gateway.port == 8080)
        #expect(config.gateway.heartbeatSeconds == 30 && config.gateway.compression && config.gateway.tls == nil)
        #expect(config.mqtt.baseTopic == "gatehouse" && config.mqtt.telemetryQoS == 1 && config.mqtt.keepaliveSeconds == 30)
        #expect(config.mqtt.maxInflight == 1000 && config.mqttClientID == "gatehouse-gw-1")
        #expect(config.mqtt.embedded?.directory == "/var/lib/gatehouse/mosquitto")
        #expect(config.auth.keyFile == "/etc/gatehouse/fleet.key" && config.auth.keyFiles.isEmpty)
        #expect(config.spool.dir == "/var/lib/gatehouse/spool" && config.spool.maxBytes == 256 << 20 && !config.spool.dropOldest)
        #expect(config.spool.maxAgeSeconds == 86400 && config.limits.maxMessageBytes == 65536 && config.limits.maxConnections == 19000)
        #expect(config.commands.defaultTimeoutMs == 10000 && config.commands.maxPendingPerDevice == 32)
        #expect(config.log.level == "info" && !config.homeAssistant.enabled && config.homeAssistant.prefix == "homeassistant")
    }

    @Test func everyProblemIsListedWithItsKey() {
        let (_, problems) = config(
            """
            gateway: {listen: not-an-address, colour: blue, id: gw/1}
            mqtt: {telemetry_qos: 3, base_topic: 'a/#', embedded_binary: /bin/sh}
            spool: {max_bytes: lots, when_full: panic}
            limits: {max_message_bytes: 10}
            wat: {x: 1}
            """)
        for key in [
            "gateway.listen:", "gateway.colour: unknown key", "gateway.id:", "mqtt.telemetry_qos:", "mqtt.base_topic:",
            "spool.max_bytes:", "spool.when_full:", "limits.max_message_bytes:", "wat.x: unknown key",
        ] {
            #expect(problems.contains { $0.hasPrefix(key) }, "\(key) not in \(problems)")
        }
        #expect(problems.count == 9)
    }

    @Test func unknownNestedKeysAreReportedButReadMappingsAreNot() {
        let (_, problems) = config("gateway: {tls: {key_fle: x}}\nauth: {key_files: {k1: /nonexistent}}\nmqtt: {embedded_binary: /bin/sh, tls: {ca_fil: x}}")
        #expect(problems.contains("gateway.tls.key_fle: unknown key"))
        #expect(problems.contains("mqtt.tls.ca_fil: unknown key"))
        #expect(!problems.contains { $0.hasPrefix("auth.key_files.k1: unknown") })
    }

    @Test func mqttPasswordIsNotAKey() {
        #expect(config("mqtt: {password: hunter2, embedded_binary: /bin/sh}").1 == ["mqtt.password: unknown key"])
    }

    @Test func environmentWinsOverTheFileAndIsValidated() {
        let (config, problems) = config(
            "mqtt: {base_topic: from-file, embedded_binary: /bin/sh}",
            environment: ["GATEHOUSE_MQTT_BASE_TOPIC": "from-env", "GATEHOUSE_SPOOL_MAX_AGE": "7d", "GATEHOUSE_MQTT_TELEMETRY_QOS": "7"])
        #expect(config.mqtt.baseTopic == "from-env" && config.spool.maxAgeSeconds == 7 * 86400)
        #expect(problems == ["mqtt.telemetry_qos: must be between 0 and 1, got 7"])
    }

    @Test func nestedTLSWinsOverTheFlatForm() throws {
        let files = try ConfigFiles()
        defer { files.remove() }
        let nested = try files.write("nested-ca.pem", "x")
        let flat = try files.write("flat-ca.pem", "x")
        let (config, problems) = config("mqtt: {url: 'mqtts://b:8883', ca_file: \(flat), tls: {ca_file: \(nested)}}")
        #expect(problems.isEmpty && config.mqtt.caFile == nested)
        #expect(self.config("mqtt: {url: 'mqtts://b:8883', ca_file: \(flat)}").0.mqtt.caFile == flat)
    }

    @Test(arguments: ["gatehouse", "site/a", "a.b-c"]) func validBaseTopics(_ topic: String) {
        #expect(MQTTSection.baseTopicProblem(topic) == nil)
    }

    @Test(arguments: ["", "/a", "a/", "a/+", "#", "a\0b"]) func invalidBaseTopics(_ topic: String) {
        #expect(MQTTSection.baseTopicProblem(topic) != nil)
    }

    @Test func loadThrowsOneErrorNamingTheFile() throws {
        let error = #expect(throws: ConfigError.self) { try GatewayConfig.load(file: "/nonexistent/gatehouse.yaml", environment: [:]) }
        #expect(error?.description.hasPrefix("/nonexistent/gatehouse.yaml: config: cannot read /nonexistent/gatehouse.yaml") == true)
    }
}

@Suite("Durations")
struct DurationTextTests {
    @Test func unitsAndBareNumbers() {
        #expect(DurationText.milliseconds("1500ms") == 1500)
        #expect(DurationText.milliseconds("90") == 90_000)
        #expect(DurationText.milliseconds("1.5s") == 1500)
        #expect(DurationText.milliseconds("10m") == 600_000)
        #expect(DurationText.milliseconds("24H") == 86_400_000)
        #expect(DurationText.milliseconds("7d") == 604_800_000)
    }

    @Test func refusesWhatIsNotADurationOrWouldOverflow() {
        for text in ["", "s", "-5s", "5 parsecs", "1e3s", "nan", "1000000000d"] {
            #expect(DurationText.milliseconds(text) == nil, "\(text)")
        }
    }

    @Test func configSecondsTakeTheSameUnits() {
        let source = ConfigSource(yamlText: "spool:\n  max_age: 36h\n", environment: [:])
        #expect(GatewayConfig(source: source).spool.maxAgeSeconds == 129_600)
        let bad = ConfigSource(yamlText: "spool:\n  max_age: 1500ms\n", environment: [:])
        _ = GatewayConfig(source: bad)
        #expect(bad.problems.contains { $0.contains("spool.max_age") })
    }
}
