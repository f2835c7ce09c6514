import Foundation
import Glibc
import GatehouseProtocol
import Logging

/// The local copy of what the gateway mirrors from the broker (retained availability, meta, state, desired and
/// `pending/<id>`, plus the queued commands taken here whose clearing the broker has not confirmed), in
/// `<spool.dir>/mirror.json`. Loaded at start before any device is admitted, so a gateway started while the
/// broker is unreachable keeps versions, session numbers, capabilities and queued commands; saved at most
/// once a second when something changed (less often when saving is slow, see `MirrorService`), and at shutdown.
///
/// Written atomically (temporary file, `fdatasync`, rename, directory sync): a crash leaves the previous
/// copy or the new one. Bounded to `maxBytes`: devices this gateway holds or held last come first, then the
/// most recently seen; what does not fit is left out (and logged), and comes back from the broker.
struct MirrorStore: Sendable {
    /// What is saved.
    struct Snapshot: Sendable {
        var devices = DeviceDirectory.Snapshot()
        var pending = PendingQueue.Snapshot()
        /// The desired documents, by device.
        var desired: [String: DesiredDocument] = [:]
    }

    let path: String
    let maxBytes: Int
    private let gatewayID: String
    private let logger: Logger

    static let defaultMaxBytes = 32 << 20

    init(dir: String, gatewayID: String, maxBytes: Int = Self.defaultMaxBytes, logger: Logger) {
        self.path = dir + "/mirror.json"
        self.gatewayID = gatewayID
        self.maxBytes = maxBytes
        self.logger = logger
    }

    /// The saved copy; empty when there is none or it cannot be read (logged: the broker has the truth).
    func load() -> Snapshot {
        guard let data = FileManager.default.contents(atPath: path) else { return Snapshot() }
        guard let snapshot = Self.decode(Array(data)) else {
            logger.warning("ignored an unreadable mirror copy; the broker's retained documents will be used", metadata: ["file": "\(path)"])
            return Snapshot()
        }
        return snapshot
    }

    /// Saves `snapshot` atomically; logs and returns false when the disk refuses.
    @discardableResult
    func save(_ snapshot: Snapshot) -> Bool {
        let (bytes, left) = Self.encode(snapshot, gatewayID: gatewayID, maxBytes: maxBytes)
        if left > 0 { logger.warning("the mirror copy is full: \(left) devices or commands left out", metadata: ["file": "\(path)"]) }
        do {
            try Self.replace(path, with: bytes)
            return true
        } catch {
            logger.warning("cannot save the mirror copy: \(error)", metadata: ["file": "\(path)"])
            return false
        }
    }

    // MARK: Encoding (pure)

    /// The file's bytes and how many devices or commands did not fit into `maxBytes`.
    static func encode(_ snapshot: Snapshot, gatewayID: String, maxBytes: Int) -> (bytes: [UInt8], left: Int) {
        let devices = snapshot.devices
        let names = Set(devices.availability.keys).union(devices.meta.keys).union(devices.states.keys).union(snapshot.desired.keys)
        // Each record is built and measured once; the priority order is only needed when not everything fits.
        var records = names.map { name in
            var record = JSONObject()
            if let availability = devices.availability[name] { record["availability"] = availability.json() }
            if let meta = devices.meta[name] { record["meta"] = meta.json() }
            if let state = devices.states[name] { record["state"] = encode(state) }
            if let desired = snapshot.desired[name] { record["desired"] = desired.json() }
            let json = JSONValue.object(record)
            return (name: name, json: json, size: json.serialized().count + name.utf8.count + 8)
        }
        var budget = maxBytes - 64
        if records.reduce(0, { $0 + $1.size }) > budget {
            // Held here last first, then the most recently seen.
            records.sort { a, b in
                let (x, y) = (devices.availability[a.name], devices.availability[b.name])
                let (mineX, mineY) = (x?.gateway == gatewayID, y?.gateway == gatewayID)
                if mineX != mineY { return mineX }
                return (x?.ts ?? 0, a.name) > (y?.ts ?? 0, b.name)
            }
        }
        var left = 0
        var deviceObject = JSONObject()
        for record in records {
            guard record.size <= budget else { left += 1; continue }
            budget -= record.size
            deviceObject[record.name] = record.json
        }
        var pending: [JSONValue] = []
        for command in snapshot.pending.commands {
            guard let json = try? JSONValue(parsing: command.encoded()) else { continue }
            let entry: JSONValue = ["device": .string(command.device), "command": json]
            let size = entry.serialized().count + 1
            guard size <= budget else { left += 1; continue }
            budget -= size
            pending.append(entry)
        }
        var taken: [JSONValue] = []
        for key in snapshot.pending.taken {
            let entry: JSONValue = ["device": .string(key.device), "id": .string(key.id), "queued_at": .number(key.queuedAt)]
            let size = entry.serialized().count + 1
            guard size <= budget else { left += 1; continue }
            budget -= size
            taken.append(entry)
        }
        let file: JSONValue = ["format": 1, "devices": .object(deviceObject), "pending": .array(pending), "taken": .array(taken)]
        return (file.serialized(), left)
    }

    private static func encode(_ state: StateMirror) -> JSONValue {
        var object = JSONObject()
        if let current = state.current { object["current"] = current.json() }
        if let retained = state.retained { object["retained"] = retained.json() }
        if let base = state.base { object["base"] = base.json() }
        if let foreign = state.foreign { object["foreign"] = foreign.json() }
        if state.supersededBelow > 0 { object["superseded_below"] = .number(state.supersededBelow) }
        return .object(object)
    }

    /// Reads the file; nil when it is not a mirror copy. Records that do not decode are skipped.
    static func decode(_ bytes: [UInt8]) -> Snapshot? {
        guard let file = try? JSONValue(parsing: bytes), file["format"]?.numberValue?.int64Value == 1,
              let devices = file["devices"]?.objectValue else { return nil }
        var snapshot = Snapshot()
        for (name, record) in devices where Identifiers.isValidDeviceID(name) {
            if let json = record["availability"], let availability = Availability(json: json) { snapshot.devices.availability[name] = availability }
            if let json = record["meta"], let meta = DeviceMeta(json: json) { snapshot.devices.meta[name] = meta }
            if let json = record["state"]?.objectValue {
                let document = { (key: String) in json[key].flatMap(StateDocument.init(json:)) }
                snapshot.devices.states[name] = StateMirror(
                    current: document("current"), retained: document("retained"), base: document("base"), foreign: document("foreign"),
                    supersededBelow: json["superseded_below"]?.numberValue?.int64Value ?? 0)
            }
            if let json = record["desired"], let desired = DesiredDocument(json: json) { snapshot.desired[name] = desired }
        }
        for entry in file["pending"]?.arrayValue ?? [] {
            guard let device = entry["device"]?.stringValue, Identifiers.isValidDeviceID(device), let json = entry["command"],
                  let command = PendingCommand(device: device, payload: json.serialized()) else { continue }
            snapshot.pending.commands.append(command)
        }
        for entry in file["taken"]?.arrayValue ?? [] {
            guard let device = entry["device"]?.stringValue, let id = entry["id"]?.stringValue,
                  let queuedAt = entry["queued_at"]?.numberValue?.int64Value else { continue }
            snapshot.pending.taken.append(PendingQueue.Taken(device: device, id: id, queuedAt: queuedAt))
        }
        return snapshot
    }

    // MARK: Files

    private struct FileError: Error, CustomStringConvertible {
        var description: String
    }

    /// Write a temporary file, sync it, rename it over `path`, sync the directory.
    private static func replace(_ path: String, with bytes: [UInt8]) throws {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FileError(description: "create \(temporary): \(String(cString: strerror(errno)))") }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, bytes.count - done) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else {
                let reason = String(cString: strerror(errno))
                close(fd)
                unlink(temporary)
                throw FileError(description: "write \(temporary): \(reason)")
            }
            done += n
        }
        let synced = fdatasync(fd) == 0
        close(fd)
        guard synced else { unlink(temporary); throw FileError(description: "sync \(temporary): \(String(cString: strerror(errno)))") }
        guard rename(temporary, path) == 0 else { throw FileError(description: "rename \(temporary): \(String(cString: strerror(errno)))") }
        let dir = open((path as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dir >= 0 { _ = fsync(dir); close(dir) }
    }
}
