import Logging
import GatehouseProtocol
import Mosquitto
import NIOCore
import Synchronization

/// A command delivered to a device and not yet answered.
struct OpenCommand: Sendable {
    let id: CommandID
    let device: String
    let name: String
    /// Where the final response goes besides `<base>/<dev>/response/<name>` (MQTT 5 Response Topic).
    let replyTo: ReplyTo?
    let sentAt: Int64
    let deadline: Int64
    let timer: Scheduled<Void>?
}

/// MQTT 5 Response Topic and Correlation Data of a request.
struct ReplyTo: Sendable {
    let topic: String
    let correlationData: [UInt8]?
}

/// Commands in flight to devices, by device and id. Taking a command out is the single point where it
/// gets its one final response, so a timeout and a late answer can never both be published.
final class CommandBook: Sendable {
    private let open = Mutex<[String: [String: OpenCommand]]>([:])

    /// Number of commands open for a device.
    func count(for device: String) -> Int {
        open.withLock { $0[device]?.count ?? 0 }
    }

    /// Whether a command id is already open for a device.
    func contains(_ id: CommandID, device: String) -> Bool {
        open.withLock { $0[device]?[id.text] != nil }
    }

    /// Records a delivered command.
    func insert(_ command: OpenCommand) {
        open.withLock { $0[command.device, default: [:]][command.id.text] = command }
    }

    /// Removes and returns a command; nil if it already finished.
    func take(_ idText: String, device: String) -> OpenCommand? {
        open.withLock { open in
            let command = open[device]?.removeValue(forKey: idText)
            if open[device]?.isEmpty == true { open[device] = nil }
            command?.timer?.cancel()
            return command
        }
    }
}
