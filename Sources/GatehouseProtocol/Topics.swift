/// The MQTT topic names of the wire contract (PROTOCOL.md section 4) under one base topic.
///
/// The base may itself contain levels (`site1/gatehouse`). Device, gateway and name arguments
/// are used as given: validate them with ``Identifiers`` before building a topic from input.
public struct Topics: Sendable, Hashable {
    /// The base topic, e.g. `gatehouse`.
    public let base: String
    /// Home Assistant's discovery prefix (config `homeassistant.prefix`), whose topics the gateway publishes and reads.
    public let homeAssistantPrefix: String?

    /// Creates the topic set for `base` (config `mqtt.base_topic`).
    public init(base: String, homeAssistantPrefix: String? = nil) {
        self.base = base
        self.homeAssistantPrefix = homeAssistantPrefix
    }

    // MARK: Device topics

    /// `<base>/<dev>/telemetry`.
    public func telemetry(_ device: String) -> String { "\(base)/\(device)/telemetry" }

    /// `<base>/<dev>/state` (retained reported state).
    public func state(_ device: String) -> String { "\(base)/\(device)/state" }

    /// `<base>/<dev>/meta` (retained hello information).
    public func meta(_ device: String) -> String { "\(base)/\(device)/meta" }

    /// `<base>/<dev>/availability` (retained online/offline).
    public func availability(_ device: String) -> String { "\(base)/\(device)/availability" }

    /// `<base>/<dev>/set` (shorthand for command `set`).
    public func set(_ device: String) -> String { "\(base)/\(device)/set" }

    /// `<base>/<dev>/event/<name>`.
    public func event(_ device: String, _ name: String) -> String { "\(base)/\(device)/event/\(name)" }

    /// `<base>/<dev>/media/<stream>`.
    public func media(_ device: String, _ stream: String) -> String { "\(base)/\(device)/media/\(stream)" }

    /// `<base>/<dev>/request/<command>`.
    public func request(_ device: String, _ command: String) -> String { "\(base)/\(device)/request/\(command)" }

    /// `<base>/<dev>/response/<command>`.
    public func response(_ device: String, _ command: String) -> String { "\(base)/\(device)/response/\(command)" }

    /// `<base>/<dev>/pending/<id>` (retained queued command).
    public func pending(_ device: String, _ id: String) -> String { "\(base)/\(device)/pending/\(id)" }

    // MARK: Bridge topics

    /// `<base>/bridge/<gw>/state` (retained gateway online/offline, also the MQTT Will).
    public func bridgeState(_ gateway: String) -> String { "\(base)/bridge/\(gateway)/state" }

    /// `<base>/bridge/<gw>/health`.
    public func bridgeHealth(_ gateway: String) -> String { "\(base)/bridge/\(gateway)/health" }

    /// `<base>/bridge/<gw>/request/<op>`.
    public func bridgeRequest(_ gateway: String, _ op: String) -> String { "\(base)/bridge/\(gateway)/request/\(op)" }

    /// `<base>/bridge/<gw>/response/<op>`.
    public func bridgeResponse(_ gateway: String, _ op: String) -> String {
        "\(base)/bridge/\(gateway)/response/\(op)"
    }

    // MARK: Subscription filters

    /// `<base>/+/request/+`: command requests for every device.
    public var allRequests: String { "\(base)/+/request/+" }

    /// `<base>/+/set`: `set` shorthands for every device.
    public var allSets: String { "\(base)/+/set" }

    /// The shared-subscription group of all gateways on this base: `<base>-gateways`.
    ///
    /// A share name is a single topic level, so `/`, `+` and `#` in the base become `_`
    /// (`site1/gatehouse` gives `site1_gatehouse-gateways`).
    public var sharedGroup: String {
        let name = String(base.map { $0 == "/" || $0 == "+" || $0 == "#" ? "_" : $0 })
        return "\(name)-gateways"
    }

    /// `$share/<base>-gateways/<filter>`: `filter` as a shared subscription of all gateways.
    public func shared(_ filter: String) -> String { "$share/\(sharedGroup)/\(filter)" }

    /// `<base>/+/availability`.
    public var allAvailability: String { "\(base)/+/availability" }

    /// `<base>/+/meta`.
    public var allMeta: String { "\(base)/+/meta" }

    /// `<base>/+/state`.
    public var allState: String { "\(base)/+/state" }

    /// `<base>/+/telemetry`.
    public var allTelemetry: String { "\(base)/+/telemetry" }

    /// `<base>/+/event/+`.
    public var allEvents: String { "\(base)/+/event/+" }

    /// `<base>/+/media/+`.
    public var allMedia: String { "\(base)/+/media/+" }

    /// `<base>/+/response/+`.
    public var allResponses: String { "\(base)/+/response/+" }

    /// `<base>/<dev>/pending/+`: the queued commands of one device.
    public func pendingFilter(_ device: String) -> String { "\(base)/\(device)/pending/+" }

    /// `<base>/+/pending/+`.
    public var allPending: String { "\(base)/+/pending/+" }

    /// `<base>/bridge/+/state`.
    public var allBridgeStates: String { "\(base)/bridge/+/state" }

    /// `<base>/bridge/+/health`.
    public var allBridgeHealth: String { "\(base)/bridge/+/health" }

    /// `<base>/bridge/<gw>/request/+`: the operations addressed to one gateway.
    public func bridgeRequests(_ gateway: String) -> String { "\(base)/bridge/\(gateway)/request/+" }

    /// `<base>/bridge/<gw>/response/+`: the answers of one gateway.
    public func bridgeResponses(_ gateway: String) -> String { "\(base)/bridge/\(gateway)/response/+" }
}
