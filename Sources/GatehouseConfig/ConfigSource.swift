// Why not apple/swift-configuration (1.4.0, already in the graph through Hummingbird): its `ConfigReader`
// returns the default when a value is present but cannot be converted, telling only an `AccessReporter`, so
// "every problem with its key" would be rebuilt on top of access events; `YAMLSnapshot` keeps the parsed keys
// internal, so the keys nobody read (our "unknown key" errors) cannot be listed without parsing the YAML a
// second time; it has no mapping type (`auth.key_files` is `kid: path`); `FileProvider` is created with
// `async` only, while SIGHUP reload and gatehousectl's `token` commands read the file synchronously; and its
// environment provider knows no `GATEHOUSE_` prefix (a `KeyMappingProvider` would add one) nor `on`/`off`
// booleans, which the README promises. Sizes (`256MiB`) and durations (`24h`) stay our own either way.
// So this small reader stays: one YAML parse (Yams), environment on top, every problem collected.

import Foundation
import Yams

/// The raw key/value view of a configuration: a YAML file overlaid with `GATEHOUSE_<SECTION>_<KEY>`
/// environment variables. Typed readers record every problem with its key instead of stopping at
/// the first, so `gatehouse --check-config` can list them all.
public final class ConfigSource {
    /// Whether sections also check the files the config names (readable, executable). `gatehousectl` turns this
    /// off: it reads the files it needs when it needs them, and need not read, say, the gateway's TLS key.
    public let checksFiles: Bool
    /// Problems found so far, each naming its key (`limits.max_message_bytes: must be an integer ≥ 1024`).
    public private(set) var problems: [String] = []
    private let yaml: [String: [String: Any]]
    private let environment: [String: String]
    private var readKeys: Set<String> = []
    /// Each key read, with its raw value as text (`-` when unset).
    public private(set) var values: [String: String] = [:]

    /// Parses YAML text (an empty text means "all defaults").
    public init(yamlText: String, environment: [String: String] = ProcessInfo.processInfo.environment, checksFiles: Bool = true) {
        self.environment = environment
        self.checksFiles = checksFiles
        var sections: [String: [String: Any]] = [:]
        do {
            let loaded = try Yams.load(yaml: yamlText)
            if let top = loaded as? [String: Any] {
                for (name, value) in top {
                    if let section = value as? [String: Any] {
                        sections[name] = section
                    } else {
                        problems.append("\(name): must be a mapping of keys")
                    }
                }
            } else if loaded != nil {
                problems.append("config: the top level must be a mapping of sections")
            }
        } catch {
            problems.append("config: not valid YAML: \(error)")
        }
        self.yaml = sections
    }

    /// Reads a YAML file; a missing or unreadable file is one problem, and defaults apply.
    public convenience init(file path: String, environment: [String: String] = ProcessInfo.processInfo.environment, checksFiles: Bool = true) {
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            self.init(yamlText: text, environment: environment, checksFiles: checksFiles)
        } else {
            self.init(yamlText: "", environment: environment, checksFiles: checksFiles)
            problems.append("config: cannot read \(path)")
        }
    }

    /// Records a problem found by a caller's own validation.
    public func problem(_ key: String, _ message: String) {
        problems.append("\(key): \(message)")
    }

    /// Records `cannot read FILE` for `key` when files are checked and `file` is given but unreadable.
    public func checkReadable(_ key: String, _ file: String?) {
        if checksFiles, let file, !FileManager.default.isReadableFile(atPath: file) { problem(key, "cannot read \(file)") }
    }

    /// Keys present in the YAML that nobody read: almost always typos.
    public func reportUnknownKeys() {
        for (section, values) in yaml { reportUnknown(values, under: section) }
    }

    /// Nested mappings (`gateway.tls.cert_file`) are checked key by key, unless read whole (`auth.key_files`).
    private func reportUnknown(_ values: [String: Any], under prefix: String) {
        for (key, value) in values where !readKeys.contains("\(prefix).\(key)") {
            if let nested = value as? [String: Any], readKeys.contains(where: { $0.hasPrefix("\(prefix).\(key).") }) {
                reportUnknown(nested, under: "\(prefix).\(key)")
            } else {
                problems.append("\(prefix).\(key): unknown key")
            }
        }
    }

    /// The value of `section.key` or `section.group.key`; `GATEHOUSE_SECTION_GROUP_KEY` wins.
    private func raw(_ key: String) -> Any? {
        readKeys.insert(key)
        let envName = "GATEHOUSE_" + key.uppercased().replacingOccurrences(of: ".", with: "_")
        var node: Any? = environment[envName]
        if node == nil {
            let parts = key.split(separator: ".").map(String.init)
            node = yaml[parts[0]]
            for part in parts.dropFirst() { node = (node as? [String: Any])?[part] }
        }
        values[key] = node.map(Self.describe) ?? "-"
        return node
    }

    /// A value as text, mappings in key order (so equal configs read alike).
    private static func describe(_ value: Any) -> String {
        guard let map = value as? [String: Any] else { return "\(value)" }
        return "{" + map.keys.sorted().map { "\($0): \(describe(map[$0]!))" }.joined(separator: ", ") + "}"
    }

    /// A string value with a default (numbers in YAML are accepted as their text).
    public func string(_ key: String, default value: String) -> String {
        optionalString(key) ?? value
    }

    /// A string value, nil when unset (numbers in YAML are accepted as their text).
    public func string(_ key: String) -> String? {
        optionalString(key)
    }

    private func optionalString(_ key: String) -> String? {
        guard let raw = raw(key) else { return nil }
        switch raw {
        case let text as String: return text
        case let number as Int: return String(number)
        case let number as Double: return String(number)
        default:
            problem(key, "must be a string")
            return nil
        }
    }

    /// Sizes: bytes, or a number with a unit (`64KiB`, `256MiB`, `1GiB`).
    public static let byteUnits = ["B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "KB": 1000, "MB": 1_000_000, "GB": 1_000_000_000]

    /// An integer within `range`; with `units`, also a number followed by one of them (`24h`, `256MiB`).
    public func int(_ key: String, default value: Int, in range: ClosedRange<Int> = Int.min...Int.max, units: [String: Int] = [:]) -> Int {
        guard let raw = raw(key) else { return value }
        let parsed: Int? = switch raw {
        case let number as Int: number
        case let text as String: Self.parseInt(text.trimmingCharacters(in: .whitespaces), units: units)
        default: nil
        }
        let unitHint = units.isEmpty ? "" : " (optionally with a unit: \(units.keys.sorted { units[$0]! < units[$1]! }.joined(separator: ", ")))"
        return checked(key, parsed, in: range, default: value, expected: "an integer\(unitHint)")
    }

    /// A duration in whole seconds within `range`: a number of seconds, or a `DurationText` (`90s`, `30m`, `24h`, `7d`).
    public func seconds(_ key: String, default value: Int, in range: ClosedRange<Int>) -> Int {
        guard let raw = raw(key) else { return value }
        let parsed: Int? = switch raw {
        case let number as Int: number
        case let text as String: DurationText.milliseconds(text).flatMap { $0 % 1000 == 0 ? Int(exactly: $0 / 1000) : nil }
        default: nil
        }
        return checked(key, parsed, in: range, default: value, expected: "a whole number of seconds, optionally with a unit (s, m, h, d)")
    }

    /// `parsed` when it is within `range`; otherwise records the problem and returns the default.
    private func checked(_ key: String, _ parsed: Int?, in range: ClosedRange<Int>, default value: Int, expected: String) -> Int {
        guard let parsed else {
            problem(key, "must be \(expected)")
            return value
        }
        guard range.contains(parsed) else {
            problem(key, "must be between \(range.lowerBound) and \(range.upperBound), got \(parsed)")
            return value
        }
        return parsed
    }

    private static func parseInt(_ text: String, units: [String: Int]) -> Int? {
        let digits = text.prefix { $0.isNumber }
        guard let number = Int(digits) else { return nil }
        let unit = text.dropFirst(digits.count).trimmingCharacters(in: .whitespaces)
        if unit.isEmpty { return number }
        guard let factor = units[unit] else { return nil }
        let (product, overflow) = number.multipliedReportingOverflow(by: factor)
        return overflow ? nil : product
    }

    /// A mapping of names to strings: a YAML mapping, or `name=value,name=value` in the environment.
    public func mapping(_ key: String) -> [String: String] {
        guard let raw = raw(key) else { return [:] }
        switch raw {
        case let text as String:
            var result: [String: String] = [:]
            for pair in text.split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == 2, !parts[0].isEmpty else {
                    problem(key, "must be name=value pairs separated by commas, got \"\(pair)\"")
                    continue
                }
                result[parts[0]] = parts[1]
            }
            return result
        case let map as [String: Any]:
            var result: [String: String] = [:]
            for (name, value) in map {
                switch value {
                case let text as String: result[name] = text
                default: problem("\(key).\(name)", "must be a string")
                }
            }
            return result
        default:
            problem(key, "must be a mapping of names to values")
            return [:]
        }
    }

    /// A boolean (`true/false/yes/no/on/off/1/0`).
    public func bool(_ key: String, default value: Bool) -> Bool {
        guard let raw = raw(key) else { return value }
        switch raw {
        case let flag as Bool: return flag
        case let text as String:
            switch text.lowercased() {
            case "true", "yes", "on", "1": return true
            case "false", "no", "off", "0": return false
            default: break
            }
        case let number as Int where number == 0 || number == 1: return number == 1
        default: break
        }
        problem(key, "must be true or false")
        return value
    }
}
