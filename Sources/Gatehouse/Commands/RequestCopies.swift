import Mosquitto
import Synchronization

/// A request reaches a gateway as two messages, one per subscription (the holder's and the shared one,
/// see `CommandRouter.RequestRoute`). Between the two the device may connect or disconnect, so each copy
/// alone could decide to act: one delivers, the other answers `offline`. The two copies are paired here,
/// and the second acts only if the first did not.
///
/// Copies are matched by what they carry (device, command, payload, Response Topic, Correlation Data);
/// the broker sends both over the one connection, one right after the other. A copy whose pair went to
/// another gateway (the shared subscription picks one) is forgotten after `lifetime`, which is kept short
/// so that an identical request sent later is not taken for its pair; at most `capacity` are kept. Of
/// several copies a copy could pair with, it takes the newest: an older one is a request's copy whose pair
/// went elsewhere. (Taking the oldest, a request sent again after the device had left was paired with the
/// earlier request's delivered copy, and got no answer at all.) Identical requests less than `lifetime`
/// apart can still be paired wrongly when the device comes or goes between them and the second's shared
/// copy arrives before its holder's copy: no field tells two identical requests apart.
final class RequestCopies: Sendable {
    private struct Copy: Hashable {
        var device: String
        var command: String
        var payload: [UInt8]
        var responseTopic: String?
        var correlationData: [UInt8]?
    }

    /// The first copy of a request, waiting for its pair.
    private struct Unpaired {
        var route: CommandRouter.RequestRoute
        var acted: Bool
        var at: ContinuousClock.Instant
    }

    private struct State {
        var unpaired: [Copy: [Unpaired]] = [:]
        var count = 0
        var lastSweep = ContinuousClock.now
    }

    private let lifetime: Duration
    private let capacity: Int
    private let state = Mutex(State())

    init(lifetime: Duration = .milliseconds(500), capacity: Int = 10_000) {
        self.lifetime = lifetime
        self.capacity = capacity
    }

    /// Whether this copy is acted on: `wouldAct` (what its route decides alone), unless it is the second
    /// copy of a request whose first copy was acted on.
    func claim(_ message: MQTTMessage, device: String, command: String, route: CommandRouter.RequestRoute, wouldAct: Bool) -> Bool {
        let copy = Copy(
            device: device, command: command, payload: message.payload,
            responseTopic: message.properties.responseTopic, correlationData: message.properties.correlationData)
        let now = ContinuousClock.now
        return state.withLock { state in
            sweep(&state, now: now)
            if let index = state.unpaired[copy]?.lastIndex(where: { $0.route != route }) {
                let first = state.unpaired[copy]!.remove(at: index)
                if state.unpaired[copy]!.isEmpty { state.unpaired[copy] = nil }
                state.count -= 1
                return wouldAct && !first.acted
            }
            if state.count < capacity {
                state.unpaired[copy, default: []].append(Unpaired(route: route, acted: wouldAct, at: now))
                state.count += 1
            }
            return wouldAct
        }
    }

    private func sweep(_ state: inout State, now: ContinuousClock.Instant) {
        guard now - state.lastSweep >= lifetime / 2 else { return }
        state.lastSweep = now
        for (copy, list) in state.unpaired {
            let kept = list.filter { now - $0.at < lifetime }
            state.count -= list.count - kept.count
            state.unpaired[copy] = kept.isEmpty ? nil : kept
        }
    }
}
