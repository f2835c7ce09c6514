import Logging
import Mosquitto
import GatehouseProtocol
import Synchronization

/// Every queued command on the broker, mirrored from the retained `pending/+` topics so whichever
/// gateway a device connects to can deliver its queue in order.
final class PendingQueue: Sendable {
    private let entries = Mutex<[String: [String: PendingCommand]]>([:])

    /// Records a retained pending command (nil = cleared); returns true when the command was not known yet.
    @discardableResult
    func observe(_ command: PendingCommand?, device: String, id: String) -> Bool {
        entries.withLock { entries in
            let known = entries[device]?[id] != nil
            entries[device, default: [:]][id] = command
            if entries[device]?.isEmpty == true { entries[device] = nil }
            return command != nil && !known
        }
    }

    /// Whether a command id is queued for a device.
    func contains(device: String, id: String) -> Bool {
        entries.withLock { $0[device]?[id] != nil }
    }

    /// Number of queued commands for a device.
    func count(for device: String) -> Int {
        entries.withLock { $0[device]?.count ?? 0 }
    }

    /// Removes and returns one queued command; nil if someone else already took it.
    func take(device: String, id: String) -> PendingCommand? {
        entries.withLock { entries in
            let command = entries[device]?.removeValue(forKey: id)
            if entries[device]?.isEmpty == true { entries[device] = nil }
            return command
        }
    }

    /// Removes and returns all queued commands of a device, oldest first.
    func takeAll(device: String) -> [PendingCommand] {
        entries.withLock { entries in
            let commands = entries.removeValue(forKey: device).map { Array($0.values) } ?? []
            return commands.sorted { ($0.queuedAt, $0.id.text) < ($1.queuedAt, $1.id.text) }
        }
    }
}
