import GatehouseProtocol
import Logging
import Mosquitto
import Synchronization

/// Brings the gateway back in step with the broker after every (re)connect and at start, and keeps the
/// writers of `availability` and `state` to the rule of PROTOCOL.md §4 (the higher session wins; versions
/// only grow).
///
/// After a (re)connect the broker sends every retained document again; the echo of the gateway's own bridge
/// state `online` comes after all of them (the broker answers one connection's packets in order, and our
/// subscriptions were repeated before that publish). Until that echo nothing is decided from the mirrors:
/// the spool is not replayed and no `online` is republished. Then `reconcile` decides each held device's
/// availability and each unconfirmed state against what the broker has, and only then does the outbox
/// start replaying, with state and desired documents the broker has superseded left out (`isSuperseded`).
///
/// Owns the resynchronisation state (which connection, which echo is awaited). Calls `DeviceDirectory`,
/// `DeviceHub` (announcements, state republishes) and `CommandRouter` (queued commands).
final class Reconciler: Sendable {
    private struct State {
        /// Bumped by every lost connection, so a resynchronisation of an older connection ends quietly.
        var generation: UInt64 = 0
        /// The bridge-state `ts` whose echo ends the current resynchronisation.
        var awaitedEcho: Int64?
        var echo: AsyncStream<Void>.Continuation?
        /// True from `reconcile` until the connection is lost.
        var synced = false
    }

    private let gatewayID: String
    private let topics: Topics
    private let directory: DeviceDirectory
    private let devices: DeviceHub
    private let commands: CommandRouter
    private let desired: DesiredStateKeeper
    private let logger: Logger
    private let state = Mutex(State())

    init(gatewayID: String, topics: Topics, directory: DeviceDirectory, devices: DeviceHub, commands: CommandRouter,
         desired: DesiredStateKeeper, logger: Logger) {
        self.gatewayID = gatewayID
        self.topics = topics
        self.directory = directory
        self.devices = devices
        self.commands = commands
        self.desired = desired
        self.logger = logger
        // At start the mirrors are the saved copy: the first connection resynchronises them like any other.
        commands.beginResync()
        desired.beginResync()
    }

    /// True while the mirrors are in step with the broker.
    var isSynced: Bool { state.withLock { $0.synced } }

    /// The connection was lost: decisions wait for the next resynchronisation.
    func brokerLost() {
        let echo = state.withLock { state in
            state.generation &+= 1
            state.synced = false
            state.awaitedEcho = nil
            defer { state.echo = nil }
            return state.echo
        }
        echo?.finish()
        directory.brokerLost()
        commands.beginResync()
        desired.beginResync()
    }

    /// The connection this resynchronisation belongs to.
    var generation: UInt64 { state.withLock { $0.generation } }

    /// Registers the bridge-state `ts` about to be published; the returned stream yields once its echo came.
    func awaitEcho(of ts: Int64) -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream<Void>.makeStream()
        let previous = state.withLock { state in
            defer { state.awaitedEcho = ts; state.echo = continuation }
            return state.echo
        }
        previous?.finish()
        return stream
    }

    /// Our own bridge state came back from the broker (from `BrokerRouter.route`, in order with the rest).
    func bridgeStateEchoed(ts: Int64) {
        let echo = state.withLock { state -> AsyncStream<Void>.Continuation? in
            guard state.awaitedEcho == ts else { return nil }
            state.awaitedEcho = nil
            defer { state.echo = nil }
            return state.echo
        }
        echo?.yield()
        echo?.finish()
    }

    /// Decides what the resynchronised mirrors call for; false when the connection of `generation` is gone.
    /// `sawEveryRetained`: the echo came, so a document the broker did not send again is one it no longer has.
    func reconcile(generation: UInt64, sawEveryRetained: Bool = true) -> Bool {
        guard state.withLock({ $0.generation == generation }) else { return false }
        commands.endResync()
        desired.endResync(clearingUnseen: sawEveryRetained)
        let now = nowMs()
        for device in directory.devicesWithUnconfirmedState {
            if let merged = directory.resolveState(of: device, now: now) {
                logger.notice("state of \(device) was reported through two gateways meanwhile: published merged version \(merged.version)")
            }
            // The broker may lack it (or only the spool has it): published behind the spool's backlog.
            if directory.session(device) == nil { devices.republishState(of: device) }
        }
        for session in directory.sessions {
            // A newer session elsewhere took the device over while we were cut off: no `online` from us.
            if let known = directory.availability(session.device), known.gateway != gatewayID, known.session > session.number { continue }
            devices.announce(session)
            devices.republishDocuments(of: session)
        }
        return state.withLock { state in
            guard state.generation == generation else { return false }
            state.synced = true
            return true
        }
    }

    /// A retained state document was recorded: while in step with the broker, a conflict is settled at once,
    /// and a held device's state that the broker lost (a late or stale publish elsewhere) is published again.
    func observedState(of device: String, _ observation: StateMirror.Observation) {
        guard isSynced else { return }
        switch observation {
        case .conflict:
            if directory.resolveState(of: device, now: nowMs()) != nil { devices.republishState(of: device) }
        case .rolledBack where directory.session(device) != nil:
            devices.republishState(of: device)
        default:
            break
        }
    }

    /// A retained availability older than the known one (a lower session) was ignored: if another gateway
    /// wrote it over the session held here, the broker's copy is put right.
    func ignoredAvailability(_ availability: Availability, of device: String) {
        guard isSynced, availability.gateway != gatewayID, let held = directory.session(device), held.number > availability.session else { return }
        devices.announce(held)
    }

    /// Whether a spooled message is a `state` document the broker has superseded (the same version or a
    /// newer one is retained, or it was folded into a merged document): replaying it would roll back.
    func isSuperseded(_ entry: SpoolEntry) -> Bool {
        guard entry.retain else { return false }
        switch topics.parse(entry.topic) {
        case .state(let device)?:
            guard let document = StateDocument.decode(entry.payload) else { return false }
            return directory.stateSupersedes(device, version: document.version)
        case .desired(let device)?:
            return desired.supersedes(entry.payload, of: device, isDelta: false)
        case .delta(let device)?:
            return desired.supersedes(entry.payload, of: device, isDelta: true)
        default:
            return false
        }
    }
}
