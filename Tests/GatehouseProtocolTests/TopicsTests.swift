import Testing

@testable import GatehouseProtocol

@Suite("Topics")
struct TopicsTests {
    static let bases = ["gatehouse", "site1/gatehouse"]

    @Test("builders", arguments: bases)
    func builders(_ base: String) {
        let topics = Topics(base: base)
        #expect(topics.telemetry("d") == "\(base)/d/telemetry")
        #expect(topics.state("d") == "\(base)/d/state")
        #expect(topics.meta("d") == "\(base)/d/meta")
        #expect(topics.availability("d") == "\(base)/d/availability")
        #expect(topics.set("d") == "\(base)/d/set")
        #expect(topics.event("d", "alarm") == "\(base)/d/event/alarm")
        #expect(topics.media("d", "snapshot") == "\(base)/d/media/snapshot")
        #expect(topics.request("d", "reboot") == "\(base)/d/request/reboot")
        #expect(topics.response("d", "reboot") == "\(base)/d/response/reboot")
        #expect(topics.pending("d", "c-1") == "\(base)/d/pending/c-1")
        #expect(topics.bridgeState("gw") == "\(base)/bridge/gw/state")
        #expect(topics.bridgeHealth("gw") == "\(base)/bridge/gw/health")
        #expect(topics.bridgeRequest("gw", "kick") == "\(base)/bridge/gw/request/kick")
        #expect(topics.bridgeResponse("gw", "kick") == "\(base)/bridge/gw/response/kick")
        #expect(topics.allRequests == "\(base)/+/request/+")
        #expect(topics.allSets == "\(base)/+/set")
        #expect(topics.allAvailability == "\(base)/+/availability")
        #expect(topics.allMeta == "\(base)/+/meta")
        #expect(topics.allState == "\(base)/+/state")
        #expect(topics.allTelemetry == "\(base)/+/telemetry")
        #expect(topics.allEvents == "\(base)/+/event/+")
        #expect(topics.allResponses == "\(base)/+/response/+")
        #expect(topics.pendingFilter("d") == "\(base)/d/pending/+")
        #expect(topics.allPending == "\(base)/+/pending/+")
        #expect(topics.allBridgeStates == "\(base)/bridge/+/state")
        #expect(topics.allBridgeHealth == "\(base)/bridge/+/health")
        #expect(topics.bridgeRequests("gw") == "\(base)/bridge/gw/request/+")
    }

    @Test("shared subscriptions")
    func shared() {
        let topics = Topics(base: "gatehouse")
        #expect(topics.sharedGroup == "gatehouse-gateways")
        #expect(topics.shared(topics.allRequests) == "$share/gatehouse-gateways/gatehouse/+/request/+")
        #expect(Topics(base: "site1/gatehouse").sharedGroup == "site1_gatehouse-gateways")
    }

    static let kinds: [TopicKind] = [
        .telemetry(device: "thermo-1"), .state(device: "thermo-1"), .meta(device: "thermo-1"),
        .availability(device: "thermo-1"), .set(device: "thermo-1"), .event(device: "thermo-1", name: "alarm"),
        .media(device: "cam-1", stream: "snapshot"), .request(device: "thermo-1", command: "set_setpoint"),
        .response(device: "thermo-1", command: "set_setpoint"), .pending(device: "thermo-1", id: "c:81.f2"),
        .bridgeState(gateway: "gw-1"), .bridgeHealth(gateway: "gw-1"), .bridgeRequest(gateway: "gw-1", op: "kick"),
        .bridgeResponse(gateway: "gw-1", op: "devices"), .bridgeState(gateway: "bridge"),
        .desired(device: "thermo-1"), .desiredSet(device: "thermo-1"), .delta(device: "thermo-1"),
    ]

    static func build(_ kind: TopicKind, _ topics: Topics) -> String {
        switch kind {
        case .telemetry(let device): topics.telemetry(device)
        case .state(let device): topics.state(device)
        case .meta(let device): topics.meta(device)
        case .availability(let device): topics.availability(device)
        case .set(let device): topics.set(device)
        case .event(let device, let name): topics.event(device, name)
        case .media(let device, let stream): topics.media(device, stream)
        case .request(let device, let command): topics.request(device, command)
        case .response(let device, let command): topics.response(device, command)
        case .pending(let device, let id): topics.pending(device, id)
        case .bridgeState(let gateway): topics.bridgeState(gateway)
        case .bridgeHealth(let gateway): topics.bridgeHealth(gateway)
        case .bridgeRequest(let gateway, let op): topics.bridgeRequest(gateway, op)
        case .bridgeResponse(let gateway, let op): topics.bridgeResponse(gateway, op)
        case .desired(let device): topics.desired(device)
        case .desiredSet(let device): topics.desiredSet(device)
        case .delta(let device): topics.delta(device)
        }
    }

    @Test("parse round-trips every kind", arguments: bases)
    func roundTrip(_ base: String) {
        let topics = Topics(base: base)
        for kind in Self.kinds {
            #expect(topics.parse(Self.build(kind, topics)) == kind)
        }
    }

    @Test("parse refuses other bases and malformed topics", arguments: [
        "gatehouse/d/telemetry", "site1/gatehouse", "site1/gatehouse/", "site1/gatehousex/d/telemetry",
        "site1/gatehouse/d", "site1/gatehouse/d/telemetry/x", "site1/gatehouse/d/unknown",
        "site1/gatehouse/bridge/telemetry", "site1/gatehouse/-d/telemetry", "site1/gatehouse//telemetry",
        "site1/gatehouse/d/event/a.b", "site1/gatehouse/d/event/", "site1/gatehouse/d/request/",
        "site1/gatehouse/d/pending/a b", "site1/gatehouse/bridge/gw/state/x", "site1/gatehouse/bridge/gw/request",
        "site1/gatehouse/bridge//state", "site1/gatehouse/bridge/gw/request/", "x/site1/gatehouse/d/state",
        "site1/gatehouse/d/media/a/b", "site1/gatehouse/bridge",
    ])
    func refuses(_ topic: String) {
        #expect(Topics(base: "site1/gatehouse").parse(topic) == nil)
    }

    @Test("unknown command names and ops still parse, for an unknown_command / unknown_op answer")
    func lenientNames() {
        let topics = Topics(base: "gatehouse")
        #expect(topics.parse("gatehouse/d/request/no such") == .request(device: "d", command: "no such"))
        #expect(topics.parse("gatehouse/bridge/gw/request/frobnicate") == .bridgeRequest(gateway: "gw", op: "frobnicate"))
    }
}

@Suite("Response Topic rule")
struct ResponseTopicRuleTests {
    let topics = Topics(base: "gh")

    @Test func ordinaryReplyTopicsAreAllowed() {
        for topic in ["app/replies/42", "gh/replies", "gh/app/inbox/x", "ghx/t1/state"] {
            #expect(topics.isAllowedResponseTopic(topic), "\(topic)")
        }
    }

    @Test func wildcardsAndDollarTopicsAreRefused() {
        for topic in ["", "a/+/b", "a/#", "#", "$SYS/x", "$share/g/t", "a\0b"] {
            #expect(!topics.isAllowedResponseTopic(topic), "\(topic)")
        }
    }

    @Test func contractTopicsAreRefused() {
        for topic in ["gh/bridge/gw1/state", "gh/bridge", "gh/t1/state", "gh/t1/meta", "gh/t1/availability",
                      "gh/t1/pending/c1", "gh/t1/response/reboot", "gh/x/desired", "gh/x/desired/set", "gh/x/delta",
                      "gh/x/media/live", "gh/not a device/telemetry", "gh/t1/set", "gh/t1/request/x", "gh/t1/event/e"] {
            #expect(!topics.isAllowedResponseTopic(topic), "\(topic)")
        }
    }

    /// §6 gives the topics under Home Assistant's discovery prefix to the gateway (its discovery configs, and the
    /// status it reads): a response there would overwrite a config, or fake Home Assistant's `online`.
    @Test func homeAssistantTopicsAreRefused() {
        let topics = Topics(base: "gh", homeAssistantPrefix: "homeassistant")
        for topic in ["homeassistant/climate/gw_d1/config", "homeassistant/status", "homeassistant"] {
            #expect(!topics.isAllowedResponseTopic(topic), "\(topic)")
        }
        for topic in ["homeassistantx/status", "apps/homeassistant/status"] {
            #expect(topics.isAllowedResponseTopic(topic), "\(topic)")
        }
    }
}
