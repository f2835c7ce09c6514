import Logging
import GatehouseProtocol
import Mosquitto
import NIOCore
import Synchronization

/// A command delivered to a device and not yet answered.
struct OpenCommand: Sendable {
    let id: CommandID
    let device: String
    /// The connection it was delivered on: when that one ends, the command is answered `offline`.
    let session: Int64
    let name: String
    /// Where the final response goes besides `<base>/<dev>/response/<name>` (MQTT 5 Response Topic).
    let replyTo: ReplyTo?
    let sentAt: Int64
    let timeoutMs: Int64
    let deadline: Int64
    var timer: Scheduled<Void>?
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
    /// Commands taken out lately, oldest first (at most `rememberedFinished`, none older than `finishedMemoryMs`): a
    /// queued copy of one of them that arrives late is not delivered again (``hasDelivered(_:)``).
    private let finished = Mutex(CircularBuffer<OpenCommand>())
    static let rememberedFinished = 4096
    static let finishedMemoryMs: Int64 = 60_000

    /// Number of commands open for a device.
    func count(for device: String) -> Int {
        open.withLock { $0[device]?.count ?? 0 }
    }

    /// Whether a command id is already open for a device.
    func contains(_ id: CommandID, device: String) -> Bool {
        open.withLock { $0[device]?[id.text] != nil }
    }

    /// Whether `command`, queued, was delivered here already: it is open, or finished lately after a delivery that
    /// came no sooner than it was queued; the same id, command and Response Topic (the same request).
    func hasDelivered(_ command: PendingCommand) -> Bool {
        func isSame(_ delivered: OpenCommand) -> Bool {
            delivered.device == command.device && delivered.id == command.id && delivered.name == command.name
                && delivered.replyTo?.topic == command.replyTo?.topic
                && delivered.replyTo?.correlationData == command.replyTo?.correlationData
        }
        if let delivered = open.withLock({ $0[command.device]?[command.id.text] }), isSame(delivered) { return true }
        return finished.withLock { $0.contains { isSame($0) && $0.sentAt >= command.queuedAt } }
    }

    /// Records a delivered command.
    func insert(_ command: OpenCommand) {
        open.withLock { $0[command.device, default: [:]][command.id.text] = command }
    }

    /// Removes and returns the commands delivered on one connection of a device.
    func takeAll(device: String, session: Int64) -> [OpenCommand] {
        take { $0.device == device && $0.session == session }
    }

    /// Removes and returns every open command.
    func takeAll() -> [OpenCommand] {
        take { _ in true }
    }

    private func take(where matches: (OpenCommand) -> Bool) -> [OpenCommand] {
        let taken: [OpenCommand] = open.withLock { open in
            var taken: [OpenCommand] = []
            for (device, commands) in open {
                for (id, command) in commands where matches(command) {
                    taken.append(command)
                    open[device]?[id] = nil
                }
                if open[device]?.isEmpty == true { open[device] = nil }
            }
            return taken
        }
        for command in taken { command.timer?.cancel() }
        remember(taken)
        return taken.sorted { ($0.sentAt, $0.id.text) < ($1.sentAt, $1.id.text) }
    }

    /// Removes and returns a command (only the one delivered on connection `session`, when given); nil if it already
    /// finished.
    func take(_ idText: String, device: String, session: Int64? = nil) -> OpenCommand? {
        let command: OpenCommand? = open.withLock { open in
            if let session, open[device]?[idText]?.session != session { return nil }
            let command = open[device]?.removeValue(forKey: idText)
            if open[device]?.isEmpty == true { open[device] = nil }
            return command
        }
        command?.timer?.cancel()
        if let command { remember([command]) }
        return command
    }

    private func remember(_ commands: [OpenCommand]) {
        guard !commands.isEmpty else { return }
        let oldest = nowMs() - Self.finishedMemoryMs
        finished.withLock { finished in
            for var command in commands {
                command.timer = nil
                finished.append(command)
            }
            while let first = finished.first, finished.count > Self.rememberedFinished || first.sentAt < oldest {
                finished.removeFirst()
            }
        }
    }
}
