import Logging
import Mosquitto
import GatehouseProtocol
import Synchronization

/// Every queued command on the broker, mirrored from the retained `pending/+` topics so whichever
/// gateway a device connects to can deliver its queue in order.
///
/// Also remembers the commands taken here (delivered or expired) whose clearing the broker has not
/// confirmed yet: while the broker is unreachable the retained copy stays there, and when it is sent
/// again on resubscription it must not be delivered or answered a second time. Both are saved by
/// `MirrorStore`, so this holds across a restart too.
final class PendingQueue: Sendable {
    /// A taken command, by the retained copy it came from.
    struct Taken: Hashable, Sendable {
        var device: String
        var id: String
        var queuedAt: Int64
    }

    /// What a retained `pending/<id>` meant.
    enum Observation: Equatable {
        /// A command not known yet: time its expiry.
        case new
        /// Known already, or cleared.
        case known
        /// Taken here already: the broker still has it and must be told to clear it.
        case taken
    }

    /// The saved part.
    struct Snapshot: Sendable {
        var commands: [PendingCommand] = []
        var taken: [Taken] = []
    }

    private struct State {
        var entries: [String: [String: PendingCommand]] = [:]
        var taken: Set<Taken> = []
        /// During a resynchronisation with the broker: what it has not sent again yet.
        var unseen: Set<Taken>?
        var changes: UInt64 = 0
    }

    private let state = Mutex(State())

    /// Records a retained pending command (nil = cleared).
    @discardableResult
    func observe(_ command: PendingCommand?, device: String, id: String) -> Observation {
        state.withLock { state in
            state.changes &+= 1
            guard let command else {
                state.taken = state.taken.filter { !($0.device == device && $0.id == id) }
                state.entries[device]?[id] = nil
                if state.entries[device]?.isEmpty == true { state.entries[device] = nil }
                return .known
            }
            let key = Taken(device: device, id: id, queuedAt: command.queuedAt)
            state.unseen?.remove(key)
            if state.taken.contains(key) { return .taken }
            let known = state.entries[device]?[id] != nil
            state.entries[device, default: [:]][id] = command
            return known ? .known : .new
        }
    }

    /// Whether a command id is queued for a device.
    func contains(device: String, id: String) -> Bool {
        state.withLock { $0.entries[device]?[id] != nil }
    }

    /// Number of queued commands for a device.
    func count(for device: String) -> Int {
        state.withLock { $0.entries[device]?.count ?? 0 }
    }

    /// All queued commands (expiry sweeps).
    var all: [PendingCommand] {
        state.withLock { $0.entries.values.flatMap(\.values) }
    }

    /// Removes and returns one queued command; nil if someone else already took it.
    func take(device: String, id: String) -> PendingCommand? {
        state.withLock { state in
            guard let command = state.entries[device]?.removeValue(forKey: id) else { return nil }
            if state.entries[device]?.isEmpty == true { state.entries[device] = nil }
            state.taken.insert(Taken(device: device, id: id, queuedAt: command.queuedAt))
            state.changes &+= 1
            return command
        }
    }

    /// Removes and returns all queued commands of a device, oldest first.
    func takeAll(device: String) -> [PendingCommand] {
        state.withLock { state in
            let commands = state.entries.removeValue(forKey: device).map { Array($0.values) } ?? []
            for command in commands { state.taken.insert(Taken(device: device, id: command.id.text, queuedAt: command.queuedAt)) }
            if !commands.isEmpty { state.changes &+= 1 }
            return commands.sorted { ($0.queuedAt, $0.id.text) < ($1.queuedAt, $1.id.text) }
        }
    }

    // MARK: Resynchronisation with the broker

    /// The broker connection is back and the retained copies are about to be sent again.
    func beginResync() {
        state.withLock { state in
            var unseen = state.taken
            for (device, commands) in state.entries {
                for command in commands.values { unseen.insert(Taken(device: device, id: command.id.text, queuedAt: command.queuedAt)) }
            }
            state.unseen = unseen
        }
    }

    /// Every retained copy has been sent again: what the broker no longer has is gone (delivered, expired or
    /// replaced elsewhere meanwhile), and so is the memory of clearing it.
    func endResync() {
        state.withLock { state in
            guard let unseen = state.unseen else { return }
            state.unseen = nil
            guard !unseen.isEmpty else { return }
            state.changes &+= 1
            state.taken.subtract(unseen)
            for key in unseen {
                if state.entries[key.device]?[key.id]?.queuedAt == key.queuedAt { state.entries[key.device]?[key.id] = nil }
                if state.entries[key.device]?.isEmpty == true { state.entries[key.device] = nil }
            }
        }
    }

    // MARK: Saving

    /// Counts changes of what is saved.
    var changes: UInt64 { state.withLock { $0.changes } }

    /// What is saved.
    func snapshot() -> Snapshot {
        state.withLock { Snapshot(commands: $0.entries.values.flatMap(\.values), taken: Array($0.taken)) }
    }

    /// Restores what was saved, at start.
    func restore(_ snapshot: Snapshot) {
        state.withLock { state in
            for command in snapshot.commands { state.entries[command.device, default: [:]][command.id.text] = command }
            state.taken = Set(snapshot.taken)
        }
    }
}
