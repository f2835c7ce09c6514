import Foundation
import GatehouseConfig
import GatehouseProtocol
import Logging
import Mosquitto
import NIOCore
import Synchronization

/// The fleet keys and the revocation list. The revoked file is re-read when its modification time
/// changes (`ReloadService` polls it every second) or on demand (`reload` bridge request, SIGHUP); what a reading
/// changes is decided by `RevocationList` (failing closed).
final class CredentialStore: Sendable {
    private let keys: [FleetKey]
    private let revokedFile: String?
    private let revoked = Mutex<(list: RevocationList, modified: Date?)>((RevocationList(), nil))
    private let metrics: GatewayMetrics
    private let logger: Logger

    /// Reads the fleet keys (by the `SecretFile` rule: one trailing newline is not part of a key; each at least
    /// `FleetKey.minimumLength` bytes) and the revoked file, which must be readable if it exists.
    init(auth: AuthSection, metrics: GatewayMetrics, logger: Logger) throws {
        func read(_ file: String, id: String?) throws -> FleetKey {
            let name = id.map { "auth.key_files.\($0)" } ?? "auth.key_file"
            let secret: [UInt8]
            do {
                secret = try SecretFile.bytes(atPath: file)
            } catch {
                throw StartupError("\(name): cannot read \(file)")
            }
            if let weakness = FleetKey.weakness(length: secret.count) { throw StartupError("\(name): \(file) \(weakness)") }
            return FleetKey(id: id, secret: secret)
        }
        self.keys = try (auth.keyFile.map { [try read($0, id: nil)] } ?? [])
            + auth.keyFiles.sorted { $0.key < $1.key }.map { try read($0.value, id: $0.key) }
        self.revokedFile = auth.revokedFile
        self.metrics = metrics
        self.logger = logger
        _ = reloadRevoked()
        // Starting with no list at all would let every revoked device in: refuse, as for an unreadable key.
        if let revokedFile, revoked.withLock({ $0.list.unreadable }) != nil {
            throw StartupError("auth.revoked_file: cannot read \(revokedFile) (it exists but is not a readable file)")
        }
    }

    /// Why a device may not connect.
    struct Refusal: Error {
        var message: String
    }

    /// Verifies a bearer token: signature, time claims, subject, and the revocation list.
    func authenticate(_ token: String) throws(Refusal) -> TokenClaims {
        let claims: TokenClaims
        do {
            claims = try DeviceToken.verify(token, keys: keys, now: Int64(Date().timeIntervalSince1970))
        } catch {
            throw Refusal(message: error.message)
        }
        if isRevoked(claims) { throw Refusal(message: "token revoked") }
        return claims
    }

    /// Whether the device id or the token id is on the revocation list.
    func isRevoked(device: String, tokenID: String?) -> Bool {
        revoked.withLock { state in
            state.list.entries.contains(device) || (tokenID.map { state.list.entries.contains($0) } ?? false)
        }
    }

    func isRevoked(_ claims: TokenClaims) -> Bool {
        isRevoked(device: claims.subject, tokenID: claims.tokenID)
    }

    /// Re-reads the revoked file if it changed (or a shorter list waits for confirmation, or it could not be
    /// read last time); returns true when the list in force changed.
    func reloadRevoked(force: Bool = false) -> Bool {
        guard let revokedFile else { return false }
        let modified = (try? FileManager.default.attributesOfItem(atPath: revokedFile))?[.modificationDate] as? Date
        let due = revoked.withLock { force || $0.modified != modified || modified == nil || $0.list.needsRereading }
        guard due else { return false }
        let reading = Self.read(revokedFile)
        let (outcome, wasUnreadable, list) = revoked.withLock { state in
            let was = state.list.unreadable
            state.modified = modified
            let outcome = state.list.apply(reading, nowNanos: NIODeadline.now().uptimeNanoseconds)
            return (outcome, was, state.list)
        }
        report(outcome, list: list, wasUnreadable: wasUnreadable, file: revokedFile)
        return outcome.changed
    }

    private static func read(_ file: String) -> RevocationList.Reading {
        guard FileManager.default.fileExists(atPath: file) else { return .missing }
        guard let data = FileManager.default.contents(atPath: file) else { return .unreadable }
        return .contents([UInt8](data))
    }

    /// Logs what a reading changed; a file that cannot be read is an error until it can be read again, and the
    /// `gatehouse_revocation_file_unreadable` gauge is 1 meanwhile.
    private func report(_ outcome: RevocationList.Outcome, list: RevocationList, wasUnreadable: RevocationList.Reading?, file: String) {
        metrics.revocationFileUnreadable(list.unreadable != nil)
        if let problem = list.unreadable, wasUnreadable == nil {
            let what = problem == .missing ? "is missing" : "cannot be read"
            logger.error("auth.revoked_file: \(file) \(what); the last list read (\(list.entries.count) entries) stays in force until it can be read again")
        } else if list.unreadable == nil, wasUnreadable != nil {
            logger.notice("auth.revoked_file: \(file) can be read again")
        }
        if !outcome.invalidLines.isEmpty {
            let lines = outcome.invalidLines.map(String.init).joined(separator: ", ")
            logger.warning("auth.revoked_file: line(s) \(lines) of \(file) are not valid UTF-8 and are ignored; every other line counts")
        }
        if outcome.shrinkWaiting {
            logger.info("auth.revoked_file: \(file) lists fewer entries than before; they are lifted once it reads the same a second later")
        }
        if outcome.changed { logger.info("revocation list loaded: \(list.entries.count) entries from \(file)") }
    }
}
