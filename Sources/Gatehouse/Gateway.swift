import Foundation
import GatehouseConfig
import GatehouseProtocol
import Logging
import Mosquitto
import NIOCore
import NIOPosix
import Synchronization

/// The composition root: builds the gateway's components and wires them together. Each component owns its
/// state privately and is handed only the others it calls (see docs/architecture.md):
///
/// - `BrokerLink`: the broker connection and the only way to publish (outbox, spool).
/// - `DeviceAdmission`: who may connect (credentials, TLS, capacity, connect rate).
/// - `DeviceHub`: device sessions, their messages and acks.
/// - `CommandRouter`: requests from MQTT, open commands, the TTL queue.
/// - `BrokerRouter`: subscriptions, routing of incoming MQTT messages, announcements after a (re)connect.
/// - `Reconciler`: the mirrors back in step with the broker after a (re)connect; who writes availability and state.
/// - `MirrorStore`: the local copy of the mirrors, loaded here before any device is admitted.
/// - `BridgeOperations`: `bridge/<gw>/request/*`, the health report.
/// - `HomeAssistantAnnouncer`: MQTT discovery.
/// - `Reloader`: SIGHUP and the `reload` request.
/// - `SettingsStore`: the live settings; `StartupConfig`: what a reload cannot change.
public final class Gateway: Sendable {
    let id: String
    let startup: StartupConfig
    let settings: SettingsStore
    let topics: Topics
    let logger: Logger
    let metrics: GatewayMetrics
    let readiness = Readiness()
    let link: BrokerLink
    let directory = DeviceDirectory()
    let admission: DeviceAdmission
    /// Connections not (yet) a device, capped (`limits.max_pending_connections`).
    let pendingConnections: PendingConnections
    let devices: DeviceHub
    /// What every device connection's frame handler shares.
    let deviceFrames: DeviceFrameHandler.Environment
    /// Live view (§8): viewer admission, camera leases, frame fan-out.
    let live: LiveView
    let commands: CommandRouter
    let homeAssistant: HomeAssistantAnnouncer
    let desired: DesiredStateKeeper
    let routing: BrokerRouter
    let reconciler: Reconciler
    /// The local copy of the mirrors, next to the spool.
    let mirror: MirrorStore
    let bridge: BridgeOperations
    let reloader: Reloader
    /// `wss://` when `gateway.tls` is configured.
    let deviceTLS: DeviceTLS?
    /// The private mosquitto, when `mqtt.embedded`.
    let embeddedBroker: EmbeddedBroker?
    let startedAt = Date()
    static let version = GatehouseVersion.current
    /// The release version (`gatehouse --version`), the same everywhere.
    public static let releaseVersion = GatehouseVersion.current

    /// Builds the gateway from a validated config. Does not connect yet: `BrokerService` does.
    public init(config: GatewayConfig, configFile: String? = nil, logger: Logger) throws {
        let startup = StartupConfig(config)
        let id = config.gateway.id
        let topics = Topics(base: config.mqtt.baseTopic, homeAssistantPrefix: config.homeAssistant.prefix)
        let metrics = GatewayMetrics()
        let settings = SettingsStore(config)
        self.id = id
        self.startup = startup
        self.settings = settings
        self.topics = topics
        self.logger = logger
        self.metrics = metrics
        let credentials = try CredentialStore(auth: config.auth, metrics: metrics, logger: logger)
        let deviceTLS = try config.gateway.tls.map { try DeviceTLS(files: $0) }
        self.deviceTLS = deviceTLS
        self.embeddedBroker = config.mqtt.embedded.map { EmbeddedBroker(settings: $0, receiveMaximum: config.mqtt.maxInflight, logger: logger) }
        var options = try MQTTClientOptions(config: config)
        let offline = BridgeState(state: .offline, ts: 0, version: Self.version)
        options.will = MQTTWill(topic: topics.bridgeState(id), payload: offline.encoded(), qos: .atLeastOnce, retain: true)
        let client = try MosquittoClient(options: options, logger: logger)
        // A disk that refuses (full, failing) does not keep the gateway from starting: the spool is off until it
        // opens (see `Spool`), and the gateway serves through the broker meanwhile; a wrong `spool.dir` does.
        // With the embedded broker the spool also keeps what that broker acknowledged until it has saved it
        // (see `Outbox`).
        let spool: Spool
        do {
            spool = try Spool(
                dir: config.spool.dir,
                limits: .init(maxBytes: config.spool.maxBytes, maxAgeMs: Int64(config.spool.maxAgeSeconds) * 1000,
                              dropOldest: config.spool.dropOldest,
                              keepAcknowledgedMs: config.mqtt.embedded == nil ? 0 : EmbeddedBroker.unsavedWindowMs),
                logger: logger)
        } catch {
            throw StartupError("spool.dir: \(error)")
        }
        let link = BrokerLink(
            client: client, spool: spool, window: config.mqtt.maxInflight, writeAhead: config.mqtt.embedded != nil,
            base: topics.base, metrics: metrics, logger: logger)
        self.link = link
        let directory = self.directory
        let readiness = self.readiness
        pendingConnections = PendingConnections(settings: settings, metrics: metrics)
        pendingConnections.sweepHandshakes(every: .milliseconds(250), on: MultiThreadedEventLoopGroup.singleton.any())
        if let warning = PendingConnections.fileLimitWarning(config.limits) { logger.warning("\(warning)") }
        admission = DeviceAdmission(
            credentials: credentials, settings: settings, directory: directory, readiness: readiness,
            compression: config.gateway.compression, metrics: metrics)
        homeAssistant = HomeAssistantAnnouncer(link: link, directory: directory, settings: settings, logger: logger)
        live = LiveView(settings: config.live, credentials: credentials, directory: directory,
                        timerLoop: MultiThreadedEventLoopGroup.singleton.any(), logger: logger)
        commands = CommandRouter(
            gatewayID: id, topics: topics, config: config.commands, link: link, directory: directory, metrics: metrics,
            readiness: readiness, timerLoop: MultiThreadedEventLoopGroup.singleton.any())
        let desired = DesiredStateKeeper(
            gatewayID: id, topics: topics, link: link, directory: directory, settings: settings, metrics: metrics, logger: logger)
        self.desired = desired
        devices = DeviceHub(
            gatewayID: id, topics: topics, heartbeatSeconds: config.gateway.heartbeatSeconds, telemetryQoS: config.mqtt.telemetryQoS,
            link: link, directory: directory, commands: commands, homeAssistant: homeAssistant, desired: desired, settings: settings,
            metrics: metrics, readiness: readiness, logger: logger, live: live)
        deviceFrames = DeviceFrameHandler.Environment(
            sink: devices, settings: settings, metrics: metrics, logger: logger, heartbeatSeconds: startup.gateway.heartbeatSeconds)
        reloader = Reloader(
            configFile: configFile, credentials: credentials, deviceTLS: deviceTLS, settings: settings, directory: directory,
            homeAssistant: homeAssistant, logger: logger, live: live)
        bridge = BridgeOperations(
            gatewayID: id, topics: topics, link: link, directory: directory, devices: devices, reloader: reloader,
            metrics: metrics, startedAt: startedAt)
        // Before any device is admitted: a gateway started while the broker is unreachable keeps its promises.
        let mirror = MirrorStore(dir: config.spool.dir, gatewayID: id, logger: logger)
        let saved = mirror.load()
        directory.restore(saved.devices)
        commands.restore(saved.pending)
        desired.restore(saved.desired)
        self.mirror = mirror
        let reconciler = Reconciler(
            gatewayID: id, topics: topics, directory: directory, devices: devices, commands: commands, desired: desired, logger: logger)
        self.reconciler = reconciler
        link.outbox.dropFromReplay { reconciler.isSuperseded($0) }
        routing = BrokerRouter(
            gatewayID: id, topics: topics, link: link, directory: directory, devices: devices, commands: commands,
            bridge: bridge, homeAssistant: homeAssistant, desired: desired, settings: settings, readiness: readiness,
            reconciler: reconciler, logger: logger)
    }

    /// Counts changes of what `mirror` saves.
    var mirrorChanges: UInt64 { directory.changes &+ commands.pendingChanges &+ desired.changes }

    /// Saves the mirrors (see `MirrorStore`).
    func saveMirror() {
        mirror.save(MirrorStore.Snapshot(devices: directory.snapshot(), pending: commands.pendingSnapshot, desired: desired.snapshot))
    }

    /// Whole seconds since the gateway started.
    var uptimeSeconds: Int { Int(Date().timeIntervalSince(startedAt)) }

    /// Last step of a graceful shutdown, after the server stopped accepting: every device is closed with
    /// 1001 and marked offline; the PUBACKs in flight get up to `gateway.shutdown_grace_s`, what is still
    /// unconfirmed goes to the spool, then the gateway's own `offline` is published.
    /// Returns whether the broker confirmed the gateway's `offline`; if not, the client leaves with its Will
    /// (a clean DISCONNECT would suppress it), so the broker still publishes `offline`.
    @discardableResult
    func shutDown() async -> Bool {
        readiness.setListening(false)
        readiness.setBrokerReady(false)
        let grace = Duration.seconds(startup.gateway.shutdownGraceSeconds)
        let devicesClosing = devices.closeAll()
        commands.shutDown()
        desired.shutDown()
        let spooled = await link.outbox.stop(grace: grace)
        // Exiting under the devices' closing handshakes could reset a connection before its 1001 is read.
        for connection in devicesClosing { try? await connection.get() }
        saveMirror()
        if spooled > 0 { logger.warning("\(spooled) messages unconfirmed by the broker within \(grace) were spooled for the next start") }
        let offline = BridgeState(state: .offline, ts: nowMs(), version: Self.version)
        // QoS 1 messages are acknowledged in order: once this one is, so is every publish before it.
        let announcement = OutboundMessage(topic: topics.bridgeState(id), payload: offline.encoded(), retain: true)
        guard await link.publishAndWait(announcement, timeout: .seconds(2)) else {
            logger.warning("the broker did not confirm the offline announcements; leaving with the Will")
            return false
        }
        return true
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
