import Foundation
import GatehouseConfig
import GatehouseProtocol
import Logging
import Mosquitto
import NIOCore
import NIOPosix
import Synchronization

/// The gateway's core: bridges device sessions and the broker. The WebSocket server, the broker link
/// and the timers call into it; it owns no threads of its own.
public final class Gateway: Sendable {
    /// The config the gateway started with; `limits`, `homeAssistant` and the log level follow reloads.
    let config: GatewayConfig
    /// Where `config` came from, re-read on SIGHUP and the `reload` bridge request.
    let configFile: String?
    let topics: Topics
    let logger: Logger
    let broker: MosquittoClient
    /// QoS 1 device messages: to the broker, or to the spool while it cannot take them.
    let outbox: Outbox
    let directory = DeviceDirectory()
    let commands: CommandBook
    let pending = PendingQueue()
    let credentials: CredentialStore
    let metrics: GatewayMetrics
    /// Timers (command deadlines, heartbeats) run on this loop.
    let timerLoop: any EventLoop
    let startedAt = Date()
    let version = "0.1.0"
    private let readiness = Mutex(Readiness())
    /// What a reload changes while devices stay connected.
    let reloadable: Mutex<Reloadable>
    /// Numeric telemetry keys announced to Home Assistant, by device.
    let homeAssistantKeys = Mutex<[String: Set<String>]>([:])
    /// `wss://` when `gateway.tls` is configured.
    let deviceTLS: DeviceTLS?
    /// The private mosquitto, when `mqtt.embedded`.
    let embeddedBroker: EmbeddedBroker?
    /// New connections per second, for the whole gateway (`limits.max_connects_per_s`).
    let connectRate: Mutex<TokenBucket>

    struct Reloadable {
        /// The config as last (re)loaded: its `limits` are in force, and it tells what the next reload changes.
        var config: GatewayConfig
        /// Home Assistant discovery for `config`, when `homeassistant.enabled` (kept: read per MQTT message).
        var homeAssistant: HomeAssistantDiscovery?
    }

    struct Readiness {
        var listening = false
        var brokerReady = false
        var subscribed = false
    }

    /// Builds the gateway from a validated config. Does not connect yet: `BrokerService` does.
    public init(config: GatewayConfig, configFile: String? = nil, logger: Logger) throws {
        self.config = config
        self.configFile = configFile
        self.topics = Topics(base: config.mqtt.baseTopic)
        self.logger = logger
        self.metrics = GatewayMetrics()
        self.credentials = try CredentialStore(auth: config.auth, logger: logger)
        self.deviceTLS = try config.gateway.tls.map { try DeviceTLS(files: $0) }
        self.reloadable = Mutex(Reloadable(config: config, homeAssistant: Self.discovery(config)))
        self.commands = CommandBook()
        self.embeddedBroker = config.mqtt.embedded.map { EmbeddedBroker(settings: $0, logger: logger) }
        self.timerLoop = MultiThreadedEventLoopGroup.singleton.any()
        self.connectRate = Mutex(TokenBucket(perSecond: config.limits.maxConnectsPerSecond, nowNanos: NIODeadline.now().uptimeNanoseconds))
        var options = try MQTTClientOptions(config: config)
        let offline = BridgeState(state: "offline", ts: 0, version: version)
        options.will = MQTTWill(topic: topics.bridgeState(config.gateway.id), payload: offline.encoded(), qos: .atLeastOnce, retain: true)
        self.broker = try MosquittoClient(options: options, logger: logger)
        let spool: Spool
        do {
            spool = try Spool(
                dir: config.spool.dir,
                limits: .init(maxBytes: config.spool.maxBytes, maxAgeMs: Int64(config.spool.maxAgeSeconds) * 1000,
                              dropOldest: config.spool.dropOldest),
                logger: logger)
        } catch {
            throw StartupError("spool.dir: \(error)")
        }
        self.outbox = Outbox(broker: broker, spool: spool, window: config.mqtt.maxInflight, logger: logger)
    }

    /// This gateway's id.
    var id: String { config.gateway.id }

    /// Whole seconds since the gateway started.
    var uptimeSeconds: Int { Int(Date().timeIntervalSince(startedAt)) }

    /// A held device's kind: from its `hello` (meta), else from its token.
    func kind(of session: DeviceSession) -> String? {
        directory.meta(session.device)?.kind ?? session.tokenKind
    }

    /// The limits in force (they change on reload).
    var limits: LimitsSection { reloadable.withLock { $0.config.limits } }

    /// Home Assistant discovery as configured now (it changes on reload).
    var homeAssistant: HomeAssistantDiscovery? { reloadable.withLock { $0.homeAssistant } }

    /// Discovery for `config`, when `homeassistant.enabled`.
    static func discovery(_ config: GatewayConfig) -> HomeAssistantDiscovery? {
        guard config.homeAssistant.enabled else { return nil }
        return HomeAssistantDiscovery(prefix: config.homeAssistant.prefix, gateway: config.gateway.id, topics: Topics(base: config.mqtt.baseTopic))
    }

    /// True while listening, connected, subscribed and announced online (what `/readyz` reports).
    public var isReady: Bool { readiness.withLock { $0.listening && $0.brokerReady } }

    var isListening: Bool { readiness.withLock { $0.listening } }

    func setListening(_ value: Bool) { readiness.withLock { $0.listening = value } }
    func setBrokerReady(_ value: Bool) { readiness.withLock { $0.brokerReady = value } }

    /// True once the subscriptions were made; the client keeps them across reconnects.
    var hasSubscribed: Bool { readiness.withLock { $0.subscribed } }
    func setSubscribed() { readiness.withLock { $0.subscribed = true } }

    /// Publishes JSON; completion (on libmosquitto's thread) reports the PUBACK or the failure.
    func publish(
        _ topic: String, _ payload: [UInt8], qos: MQTTQoS = .atLeastOnce, retain: Bool = false,
        properties: MQTTProperties = .init(), completion: (@Sendable (MosquittoError?) -> Void)? = nil
    ) {
        metrics.published(type: GatewayMetrics.outType(topic: topic, base: topics.base), bytes: payload.count)
        do {
            try broker.publish(topic: topic, payload: payload, qos: qos, retain: retain, properties: properties) { error in
                if let error { self.logger.warning("publish to \(topic) failed: \(error.message)") }
                completion?(error)
            }
        } catch let error as MosquittoError {
            logger.warning("publish to \(topic) failed: \(error.message)")
            completion?(error)
        } catch {
            completion?(MosquittoError(code: .other, message: "\(error)"))
        }
    }
}

extension Gateway {
    /// Publishes a QoS 1 message of `device` (its own, or a command response) through the outbox: `completion` runs once
    /// the broker has it or it is durably spooled, or says why it was refused.
    func publishSafely(
        _ topic: String, _ payload: [UInt8], of device: String, retain: Bool = false, correlationData: [UInt8]? = nil,
        completion: Outbox.Completion? = nil
    ) {
        metrics.published(type: GatewayMetrics.outType(topic: topic, base: topics.base), bytes: payload.count)
        let entry = SpoolEntry(topic: topic, payload: payload, retain: retain, correlationData: correlationData, receivedAt: nowMs())
        outbox.send(entry, device: device, completion: completion)
    }

    /// Publishes at QoS 1 and waits for the PUBACK, at most `timeout`; returns whether it came.
    func publishAndWait(_ topic: String, _ payload: [UInt8], retain: Bool = false, timeout: Duration) async -> Bool {
        let outcome = AsyncStream<Bool>.makeStream()
        publish(topic, payload, retain: retain) { error in outcome.continuation.yield(error == nil) }
        let timer = Task {
            try? await Task.sleep(for: timeout)
            outcome.continuation.yield(false)
        }
        defer { timer.cancel() }
        for await confirmed in outcome.stream { return confirmed }
        return false
    }
}

/// A problem that keeps the gateway from starting, in one line naming the config key or file at fault.
struct StartupError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Unix time in milliseconds.
@inline(__always) func nowMs() -> Int64 {
    Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
}
