import Foundation
import GatehouseConfig

/// The gateway's config as `gatehousectl` sees it: the same reader, keys, defaults and validation as the gateway
/// (`GatewayConfig`), so an operator on the gateway host can point the CLI at the same broker and key with
/// `--config /etc/gatehouse/gatehouse.yaml`. Files the config names are not checked up front (the CLI reads only
/// those it needs, when it needs them). Relative paths are taken relative to the current directory, or else to the
/// config file's directory.
struct GatewayConfigFile: Sendable {
    /// The config: from the file and `GATEHOUSE_<SECTION>_<KEY>` variables, or from the variables alone.
    var config: GatewayConfig
    /// Whether a config file was given (`--config` or `GATEHOUSE_CONFIG`).
    var isFromFile: Bool

    /// The config named by `--config`, else by `GATEHOUSE_CONFIG`; without one, the environment over the defaults.
    ///
    /// - Throws: `CtlError` (usage) listing every problem with its key, as `gatehouse --check-config` does.
    static func load(option: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> GatewayConfigFile {
        let path = option ?? Environment.value("GATEHOUSE_CONFIG")
        do {
            guard let path else {
                let source = ConfigSource(yamlText: "", environment: environment, checksFiles: false)
                return GatewayConfigFile(config: try GatewayConfig.load(source, named: "environment"), isFromFile: false)
            }
            var config = try GatewayConfig.load(file: path, environment: environment, checksFiles: false)
            config.resolveRelativePaths(beside: path)
            return GatewayConfigFile(config: config, isFromFile: true)
        } catch {
            throw CtlError.usage("\(error)")
        }
    }
}

extension GatewayConfig {
    /// A relative path the current directory does not have is looked up beside the config file.
    fileprivate mutating func resolveRelativePaths(beside configFile: String) {
        let directory = (configFile as NSString).deletingLastPathComponent
        func resolve(_ file: String?) -> String? {
            guard let file, !file.hasPrefix("/"), !directory.isEmpty, !FileManager.default.fileExists(atPath: file)
            else { return file }
            let beside = (directory as NSString).appendingPathComponent(file)
            return FileManager.default.fileExists(atPath: beside) ? beside : file
        }
        mqtt.passwordFile = resolve(mqtt.passwordFile)
        mqtt.caFile = resolve(mqtt.caFile)
        mqtt.certFile = resolve(mqtt.certFile)
        mqtt.keyFile = resolve(mqtt.keyFile)
        auth.keyFile = resolve(auth.keyFile)
        auth.keyFiles = auth.keyFiles.mapValues { resolve($0) ?? $0 }
    }
}

/// Reads environment variables; empty values count as unset.
enum Environment {
    /// The value of `name`, or nil when unset or empty.
    static func value(_ name: String) -> String? {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { return nil }
        return value
    }
}

extension SecretFile {
    /// The secret in `path` (the shared `SecretFile` rule).
    ///
    /// - Throws: `CtlError` (usage) naming `what` and the file when it cannot be read.
    static func bytes(_ path: String, what: String) throws -> [UInt8] {
        do {
            return try bytes(atPath: path)
        } catch {
            throw CtlError.usage("cannot read \(what) \(path): \(error.reason)")
        }
    }
}
