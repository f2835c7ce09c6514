import Testing

@testable import Gatehouse

@Suite struct ObservabilityTests {
    @Test func rateAveragesBetweenReadingsAtLeastAWindowApart() {
        var rate = RateEstimate(nowMs: 0)
        #expect(rate.update(count: 10, nowMs: 500) == 0)  // within the window: the last figure (none yet)
        #expect(rate.update(count: 20, nowMs: 2000) == 10)  // 20 messages in 2 s
        #expect(rate.update(count: 25, nowMs: 2500) == 10)  // too soon: repeated
        #expect(rate.update(count: 25, nowMs: 4000) == 2.5)  // 5 more since 2 s, over 2 s
        #expect(rate.update(count: 25, nowMs: 9000) == 0)
    }

    @Test(arguments: [
        ("gh/dev-1/telemetry", "telemetry"), ("gh/dev-1/event/door", "event"), ("gh/dev-1/media/snapshot", "media"),
        ("gh/dev-1/pending/c-1", "pending"), ("gh/dev-1/availability", "availability"), ("gh/bridge/gw-1/health", "bridge"),
        ("homeassistant/sensor/x/config", "other"), ("ghx/dev-1/telemetry", "other"), ("gh/dev-1", "other"),
        ("gh/dev-1/unheard-of", "other"),
    ])
    func publishedTopicTypes(topic: String, type: String) {
        #expect(GatewayMetrics.outType(topic: topic, base: "gh") == type)
    }
}

@Suite struct ConfigTests {
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
    }
}
