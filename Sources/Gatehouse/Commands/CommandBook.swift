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
    /// Set by the book when the command opens (again): tells this opening from any other of the same id, so a
    /// deadline timer ends only the opening it was armed for.
    var opening: UInt64 = 0
}

/// MQTT 5 Response Topic and Correlation Data of a request.
struct ReplyTo: Sendable {
    let topic: String
    let correlationData: [UInt8]?
}

/// Commands in flight to devices, by device and id. Taking a command out is the single point where it
/// gets its one final response, so a timeout and a late answer can never both be published.
final class CommandBook: Sendable {
    private struct Book {
        var open: [String: [String: OpenCommand]] = [:]
        /// The ids, by device, of commands whose device answer is on its way (``takeForAnswer(_:device:)``): taken, but
        /// a refused answer opens them again, so their ids are not free for another request until it is safe.
        var answering: [String: Set<String>] = [:]
        /// The last ``OpenCommand/opening`` given.
        var openings: UInt64 = 0
        /// Set by ``close()``: the gateway is shutting down, and nothing opens any more.
        var closed = false

        /// Whether `id` is taken for `device`: open, or its answer on its way.
        func holds(_ id: String, device: String) -> Bool {
            open[device]?[id] != nil || answering[device]?.contains(id) == true
        }

        /// Opens `command` under a new opening number; nil when its id is taken or the book is closed.
        mutating func admit(_ command: OpenCommand) -> OpenCommand? {
            guard !closed, !holds(command.id.text, device: command.device) else { return nil }
            var command = command
            openings += 1
            command.opening = openings
            command.timer = nil
            open[command.device, default: [:]][command.id.text] = command
            return command
        }
    }

    private let book = Mutex(Book())
    /// Commands taken out lately, oldest first (at most `rememberedFinished`, none older than `finishedMemoryMs`): a
    /// queued copy of one of them that arrives late is not delivered again (``hasDelivered(_:)``).
    private let finished = Mutex(CircularBuffer<OpenCommand>())
    static let rememberedFinished = 4096
    static let finishedMemoryMs: Int64 = 60_000

    /// Number of commands open for a device.
    func count(for device: String) -> Int {
        book.withLock { $0.open[device]?.count ?? 0 }
    }

    /// Whether a command id is taken for a device: open, or its answer is on its way.
    func contains(_ id: CommandID, device: String) -> Bool {
        book.withLock { $0.holds(id.text, device: device) }
    }

    /// Whether `command`, queued, was delivered here already: it is open, or finished lately after a delivery that
    /// came no sooner than it was queued; the same id, command and Response Topic (the same request).
    func hasDelivered(_ command: PendingCommand) -> Bool {
        func isSame(_ delivered: OpenCommand) -> Bool {
            delivered.device == command.device && delivered.id == command.id && delivered.name == command.name
                && delivered.replyTo?.topic == command.replyTo?.topic
                && delivered.replyTo?.correlationData == command.replyTo?.correlationData
        }
        if let delivered = book.withLock({ $0.open[command.device]?[command.id.text] }), isSame(delivered) { return true }
        return finished.withLock { $0.contains { isSame($0) && $0.sentAt >= command.queuedAt } }
    }

    /// Records a delivered command, unless its id is taken already (open, or its answer on its way) or the book is
    /// closed: nil then. The check and the record are one step, so of two racing deliveries of one id one is refused.
    func open(_ command: OpenCommand) -> OpenCommand? {
        book.withLock { $0.admit(command) }
    }

    /// The gateway is shutting down: nothing opens from now on (``open(_:)``, a refused answer's reopening).
    func close() {
        book.withLock { $0.closed = true }
    }

    /// Whether ``close()`` was called.
    var isClosed: Bool { book.withLock { $0.closed } }

    /// Removes and returns the commands delivered on one connection of a device.
    func takeAll(device: String, session: Int64) -> [OpenCommand] {
        take { $0.device == device && $0.session == session }
    }

    /// Removes and returns every open command.
    func takeAll() -> [OpenCommand] {
        take { _ in true }
    }

    private func take(where matches: (OpenCommand) -> Bool) -> [OpenCommand] {
        let taken: [OpenCommand] = book.withLock { book in
            var taken: [OpenCommand] = []
            for (device, commands) in book.open {
                for (id, command) in commands where matches(command) {
                    taken.append(command)
                    book.open[device]?[id] = nil
                }
                if book.open[device]?.isEmpty == true { book.open[device] = nil }
            }
            return taken
        }
        for command in taken { command.timer?.cancel() }
        remember(taken)
        return taken.sorted { ($0.sentAt, $0.id.text) < ($1.sentAt, $1.id.text) }
    }

    /// Removes and returns a command (only the opening `opening`, when given); nil if it already finished.
    func take(_ idText: String, device: String, opening: UInt64? = nil) -> OpenCommand? {
        take(idText, device: device, answering: false) { command in opening.map { $0 == command.opening } ?? true }
    }

    /// Takes a command for its device's answer, keeping its id taken (``contains(_:device:)``) until
    /// ``answerSettled(_:refused:)`` says whether the answer was safe.
    func takeForAnswer(_ idText: String, device: String) -> OpenCommand? {
        take(idText, device: device, answering: true) { _ in true }
    }

    /// The answer of a command taken by ``takeForAnswer(_:device:)`` is safe, or was `refused`: then the command
    /// opens again (under a new opening number, in the same step that frees its id) and is returned, for its deadline
    /// to be armed anew; or, when the book is closed, it is returned not open, for its final response now.
    func answerSettled(_ command: OpenCommand, refused: Bool) -> (command: OpenCommand, reopened: Bool)? {
        book.withLock { book in
            book.answering[command.device]?.remove(command.id.text)
            if book.answering[command.device]?.isEmpty == true { book.answering[command.device] = nil }
            guard refused else { return nil }
            return book.admit(command).map { ($0, true) } ?? (command, false)
        }
    }

    /// Keeps `timer` with the opening `command` while it is open; false when it is not (taken meanwhile).
    func keep(_ timer: Scheduled<Void>, for command: OpenCommand) -> Bool {
        book.withLock { book in
            guard book.open[command.device]?[command.id.text]?.opening == command.opening else { return false }
            book.open[command.device]?[command.id.text]?.timer = timer
            return true
        }
    }

    private func take(_ idText: String, device: String, answering: Bool, if matches: (OpenCommand) -> Bool) -> OpenCommand? {
        let command: OpenCommand? = book.withLock { book in
            guard let command = book.open[device]?[idText], matches(command) else { return nil }
            book.open[device]?[idText] = nil
            if book.open[device]?.isEmpty == true { book.open[device] = nil }
            if answering { book.answering[device, default: []].insert(idText) }
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
