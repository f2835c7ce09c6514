import GatehouseProtocol
import Logging
import Mosquitto
import NIOCore
import Synchronization

extension Gateway {
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
        let (previous, previousDiscovery) = reloadable.withLock { current in
            defer {
                current.config = fresh
                current.homeAssistant = Self.discovery(fresh)
            }
            return (current.config, current.homeAssistant)
        }
        let changed = Set(fresh.values.keys).union(previous.values.keys).filter { fresh.values[$0] != previous.values[$0] }.sorted()
        outcome.applied = changed.filter { key in Self.reloadableKeys.contains { key == $0 || ($0.hasSuffix(".") && key.hasPrefix($0)) } }
        outcome.needRestart = changed.filter { !outcome.applied.contains($0) }
        LogOutput.setLevel(fresh.log.level)
        if fresh.limits.maxConnectsPerSecond != previous.limits.maxConnectsPerSecond {
            connectRate.withLock { $0 = TokenBucket(perSecond: fresh.limits.maxConnectsPerSecond, nowNanos: NIODeadline.now().uptimeNanoseconds) }
        }
        homeAssistantChanged(from: previousDiscovery, to: homeAssistant)
        logger.notice("\(trigger): reloaded \(configFile); applied: \(outcome.applied.isEmpty ? "nothing changed" : outcome.applied.joined(separator: ", "))")
        if !outcome.needRestart.isEmpty {
            logger.warning("\(trigger): changed but only applied at the next restart: \(outcome.needRestart.joined(separator: ", "))")
        }
        return outcome
    }
}
