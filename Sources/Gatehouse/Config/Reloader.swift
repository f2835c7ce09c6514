import GatehouseProtocol
import Logging

/// SIGHUP and the `reload` bridge request: what a reload changes, decided in one place. It re-reads the
/// revocation list (and closes revoked devices), the device TLS certificate (for new connections), and
/// the config file, whose live settings (`SettingsStore`) take effect at once; other changed keys are
/// named as needing a restart.
///
/// Owns nothing. Calls `CredentialStore`, `DeviceTLS`, `SettingsStore`, `HomeAssistantAnnouncer`; reads
/// `DeviceDirectory` (sessions to check against revocations).
final class Reloader: Sendable {
    private let configFile: String?
    private let credentials: CredentialStore
    private let deviceTLS: DeviceTLS?
    private let settings: SettingsStore
    private let directory: DeviceDirectory
    private let homeAssistant: HomeAssistantAnnouncer
    private let logger: Logger

    /// Live view: viewers whose token is revoked are closed too.
    private let live: LiveView?

    init(configFile: String?, credentials: CredentialStore, deviceTLS: DeviceTLS?, settings: SettingsStore, directory: DeviceDirectory,
         homeAssistant: HomeAssistantAnnouncer, logger: Logger, live: LiveView? = nil) {
        self.live = live
        self.configFile = configFile
        self.credentials = credentials
        self.deviceTLS = deviceTLS
        self.settings = settings
        self.directory = directory
        self.homeAssistant = homeAssistant
        self.logger = logger
    }

    /// What a reload did, for the log and the `reload` bridge response.
    struct ReloadOutcome {
        /// Config keys whose new value is in force.
        var applied: [String] = []
        /// Config keys that changed but keep their old value until a restart.
        var needRestart: [String] = []
        /// Why the config file was not applied, if it was not (every other step still ran).
        var configProblems: [String] = []
        var revokedListChanged = false
        var tlsReloaded = false

        var json: JSONValue {
            .object(JSONObject([
                ("revoked_list_changed", .bool(revokedListChanged)),
                ("tls_reloaded", .bool(tlsReloaded)),
                ("applied", .array(applied.map(JSONValue.string))),
                ("restart_needed", .array(needRestart.map(JSONValue.string))),
                ("config_problems", .array(configProblems.map(JSONValue.string))),
            ]))
        }
    }

    /// Keys a reload applies without dropping devices (a prefix ending in `.` covers its section).
    /// (The revocation list and TLS files are re-read too, but from the paths the gateway started with.)
    static let reloadableKeys = ["log.level", "limits.", "homeassistant."]

    /// Closes connected devices whose id or token is now revoked (1008, reason `revoked`), and live viewers whose
    /// viewer token is.
    func enforceRevocations() {
        for session in directory.sessions where credentials.isRevoked(device: session.device, tokenID: session.tokenID) {
            session.close(.policyViolation, reason: .revoked, text: "credential revoked")
        }
        live?.endRevoked()
    }

    /// The revocation list is polled (every second by `ReloadService`): a changed list is enforced at once.
    func pollRevocations() {
        if credentials.reloadRevoked() { enforceRevocations() }
    }

    /// SIGHUP and the `reload` bridge request: re-reads the revocation list and the TLS certificate, then the
    /// config file, applying `log.level`, `limits.*` and `homeassistant.*` at once. Every other changed key
    /// is named in the log as needing a restart. A config with problems is not applied at all.
    func reload(trigger: String) -> ReloadOutcome {
        var outcome = ReloadOutcome()
        outcome.revokedListChanged = credentials.reloadRevoked(force: true)
        enforceRevocations()
        if let deviceTLS {
            do {
                try deviceTLS.reload()
                outcome.tlsReloaded = true
            } catch {
                logger.error("\(trigger): TLS not reloaded, the previous certificate stays in use: \(error)")
            }
        }
        guard let configFile else { return outcome }
        let fresh: GatewayConfig
        do {
            fresh = try GatewayConfig.load(file: configFile)
        } catch {
            outcome.configProblems = error.problems
            logger.error("\(trigger): \(configFile) not applied, the running config stays: \(error.problems.joined(separator: "; "))")
            return outcome
        }
        let previous = settings.replace(with: fresh)
        let changed = Set(fresh.values.keys).union(previous.config.values.keys)
            .filter { fresh.values[$0] != previous.config.values[$0] }.sorted()
        outcome.applied = changed.filter { key in Self.reloadableKeys.contains { key == $0 || ($0.hasSuffix(".") && key.hasPrefix($0)) } }
        outcome.needRestart = changed.filter { !outcome.applied.contains($0) }
        LogOutput.setLevel(fresh.log.level)
        homeAssistant.changed(from: previous.homeAssistant, to: settings.now.homeAssistant)
        logger.notice("\(trigger): reloaded \(configFile); applied: \(outcome.applied.isEmpty ? "nothing changed" : outcome.applied.joined(separator: ", "))")
        if !outcome.needRestart.isEmpty {
            logger.warning("\(trigger): changed but only applied at the next restart: \(outcome.needRestart.joined(separator: ", "))")
        }
        return outcome
    }
}
