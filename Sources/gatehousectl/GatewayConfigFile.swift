import Foundation
import Yams

/// The few keys `gatehousectl` reads from the gateway's YAML config, so an operator on the gateway host can point
/// the CLI at the same broker and key with `--config /etc/gatehouse/gatehouse.yaml`.
///
/// Keys (all optional): `mqtt.url` (string; without it, the gateway's embedded broker on 127.0.0.1:`mqtt.embedded_port`),
/// `mqtt.username` (string), `mqtt.password` (string),
/// `mqtt.password_file` (path), `mqtt.base_topic` (string), `auth.key_file` (path).
/// Relative paths are taken relative to the current directory, or else to the config file's directory.
struct GatewayConfigFile: Sendable {
    /// `mqtt.url`.
    var mqttURL: String?
    /// `mqtt.username`.
    var mqttUsername: String?
    /// `mqtt.password`.
    var mqttPassword: String?
    /// `mqtt.password_file`, resolved.
    var mqttPasswordFile: String?
    /// `mqtt.base_topic`.
    var baseTopic: String?
    /// `auth.key_file`, resolved.
    var keyFile: String?
    /// `auth.key_files` (key id → file), resolved.
    var keyFiles: [String: String] = [:]

    /// An empty config (no file given).
    init() {}

    /// Reads `path`.
    ///
    /// - Throws: `CtlError` (usage) when the file cannot be read or is not YAML.
    init(path: String) throws {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw CtlError.usage("cannot read config file \(path): \(Self.reason(error))")
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            let reason = "\(error)".split(whereSeparator: \.isNewline).prefix(2).joined(separator: ": ")
            throw CtlError.usage("config file \(path) is not valid YAML: \(reason)")
        }
        guard let root else { return }
        let directory = (path as NSString).deletingLastPathComponent
        func resolve(_ file: String?) -> String? {
            guard let file, !file.hasPrefix("/"), !directory.isEmpty,
                !FileManager.default.fileExists(atPath: file)
            else { return file }
            let beside = (directory as NSString).appendingPathComponent(file)
            return FileManager.default.fileExists(atPath: beside) ? beside : file
        }
        let mqtt = root["mqtt"]
        let embedded = mqtt?["embedded"]?.bool ?? true
        self.mqttURL = mqtt?["url"]?.string ?? (embedded ? mqtt?["embedded_port"]?.int.map { "mqtt://127.0.0.1:\($0)" } : nil)
        self.mqttUsername = mqtt?["username"]?.string
        self.mqttPassword = mqtt?["password"]?.string
        self.mqttPasswordFile = resolve(mqtt?["password_file"]?.string)
        self.baseTopic = mqtt?["base_topic"]?.string
        self.keyFile = resolve(root["auth"]?["key_file"]?.string)
        for (id, file) in root["auth"]?["key_files"]?.mapping ?? [:] {
            if let id = id.string, let path = resolve(file.string) { keyFiles[id] = path }
        }
    }

    /// The config named by `--config`, else by `GATEHOUSE_CONFIG`, else an empty one.
    static func load(option: String?) throws -> GatewayConfigFile {
        if let path = option ?? Environment.value("GATEHOUSE_CONFIG") {
            return try GatewayConfigFile(path: path)
        }
        return GatewayConfigFile()
    }

    /// A short reason for a file error (the POSIX text when there is one).
    static func reason(_ error: any Error) -> String {
        if let cocoa = error as? CocoaError, let posix = cocoa.underlying as? POSIXError {
            return String(cString: strerror(posix.code.rawValue))
        }
        if let cocoa = error as? CocoaError {
            switch cocoa.code {
            case .fileReadNoSuchFile: return "no such file"
            case .fileReadNoPermission: return "permission denied"
            default: break
            }
        }
        return "\(error)"
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

/// Reads a secret from a file, without the one trailing newline editors add.
enum SecretFile {
    /// The file's bytes.
    ///
    /// - Throws: `CtlError` (usage) naming the file when it cannot be read.
    static func bytes(_ path: String, what: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason = FileManager.default.fileExists(atPath: path) ? "permission denied" : "no such file"
            throw CtlError.usage("cannot read \(what) \(path): \(reason)")
        }
        return [UInt8](data)
    }

    /// The file as text without one trailing newline (`\n` or `\r\n`).
    static func text(_ path: String, what: String) throws -> String {
        var bytes = try bytes(path, what: what)
        if bytes.last == UInt8(ascii: "\n") { bytes.removeLast() }
        if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self)
    }
}
