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
        /// Not kept: the mirror holds its limit of commands already.
        case full
    }

    /// The saved part.
    struct Snapshot: Sendable {
        var commands: [PendingCommand] = []
        var taken: [Taken] = []
    }

    private struct State {
        /// Changed only through `insert` and `remove…`, which keep `count`.
        private(set) var entries: [String: [String: PendingCommand]] = [:]
        /// Commands in `entries`, of every device.
        private(set) var count = 0
        var taken: Set<Taken> = []
        /// During a resynchronisation with the broker: what it has not sent again yet.
        var unseen: Set<Taken>?
        var changes: UInt64 = 0

        /// Keeps `command` as the device's `id`; returns whether one was kept there before.
        mutating func insert(_ command: PendingCommand, device: String, id: String) -> Bool {
            let known = entries[device, default: [:]].updateValue(command, forKey: id) != nil
            if !known { count += 1 }
            return known
        }

        mutating func remove(device: String, id: String) -> PendingCommand? {
            guard let command = entries[device]?.removeValue(forKey: id) else { return nil }
            if entries[device]?.isEmpty == true { entries[device] = nil }
            count -= 1
            return command
        }

        mutating func removeAll(device: String) -> [PendingCommand] {
            let commands = entries.removeValue(forKey: device).map { Array($0.values) } ?? []
            count -= commands.count
            return commands
        }
    }

    private let state = Mutex(State())

    /// Records a retained pending command (nil = cleared); a new one only while fewer than `limit` are kept.
    @discardableResult
    func observe(_ command: PendingCommand?, device: String, id: String, limit: Int = .max) -> Observation {
        state.withLock { state in
            state.changes &+= 1
            guard let command else {
                state.taken = state.taken.filter { !($0.device == device && $0.id == id) }
                _ = state.remove(device: device, id: id)
                return .known
            }
            let key = Taken(device: device, id: id, queuedAt: command.queuedAt)
            state.unseen?.remove(key)
            if state.taken.contains(key) { return .taken }
            if state.count >= limit, state.entries[device]?[id] == nil { return .full }
            return state.insert(command, device: device, id: id) ? .known : .new
        }
    }

    /// Queued commands of every device.
    var count: Int { state.withLock { $0.count } }

    /// The command queued for `device` as `id`, if any.
    func command(device: String, id: String) -> PendingCommand? {
        state.withLock { $0.entries[device]?[id] }
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
            guard let command = state.remove(device: device, id: id) else { return nil }
            state.taken.insert(Taken(device: device, id: id, queuedAt: command.queuedAt))
            state.changes &+= 1
            return command
        }
    }

    /// Removes and returns all queued commands of a device, oldest first.
    func takeAll(device: String) -> [PendingCommand] {
        state.withLock { state in
            let commands = state.removeAll(device: device)
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
            for key in unseen where state.entries[key.device]?[key.id]?.queuedAt == key.queuedAt {
                _ = state.remove(device: key.device, id: key.id)
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
            for command in snapshot.commands { _ = state.insert(command, device: command.device, id: command.id.text) }
            state.taken = Set(snapshot.taken)
        }
    }
}
