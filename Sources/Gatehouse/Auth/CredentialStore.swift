import Foundation
import GatehouseConfig
import GatehouseProtocol
import Logging
import Mosquitto
import Synchronization

/// The fleet keys and the revocation list. The revoked file is re-read when its modification time
/// changes (`RevocationWatcher` polls it) or on demand (`reload` bridge request, SIGHUP).
final class CredentialStore: Sendable {
    private let keys: [FleetKey]
    private let revokedFile: String?
    private let revoked = Mutex<(entries: Set<String>, modified: Date?)>(([], nil))
    private let logger: Logger

    /// Reads the fleet keys (by the `SecretFile` rule: one trailing newline is not part of a key) and the revoked file.
    init(auth: AuthSection, logger: Logger) throws {
        func read(_ file: String, id: String?) throws -> FleetKey {
            do {
                return FleetKey(id: id, secret: try SecretFile.bytes(atPath: file))
            } catch {
                throw StartupError("\(id.map { "auth.key_files.\($0)" } ?? "auth.key_file"): cannot read \(file)")
            }
        }
        self.keys = try (auth.keyFile.map { [try read($0, id: nil)] } ?? [])
            + auth.keyFiles.sorted { $0.key < $1.key }.map { try read($0.value, id: $0.key) }
        self.revokedFile = auth.revokedFile
        self.logger = logger
        _ = reloadRevoked()
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
            state.entries.contains(device) || (tokenID.map { state.entries.contains($0) } ?? false)
        }
    }

    func isRevoked(_ claims: TokenClaims) -> Bool {
        isRevoked(device: claims.subject, tokenID: claims.tokenID)
    }

    /// Re-reads the revoked file if it changed; returns true when the list changed.
    func reloadRevoked(force: Bool = false) -> Bool {
        guard let revokedFile else { return false }
        let modified = (try? FileManager.default.attributesOfItem(atPath: revokedFile))?[.modificationDate] as? Date
        let unchanged = revoked.withLock { $0.modified == modified && modified != nil }
        if unchanged && !force { return false }
        let text = (try? String(contentsOfFile: revokedFile, encoding: .utf8)) ?? ""
        let entries = Set(text.split(whereSeparator: \.isNewline).compactMap { line -> String? in
            let entry = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
                .trimmingCharacters(in: .whitespaces)
            return entry.isEmpty ? nil : entry
        })
        let changed = revoked.withLock { state in
            defer { state = (entries, modified) }
            return state.entries != entries
        }
        if changed { logger.info("revocation list loaded: \(entries.count) entries from \(revokedFile)") }
        return changed
    }
}
