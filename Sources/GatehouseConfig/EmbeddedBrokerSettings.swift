import Foundation

/// `mqtt.embedded*`: a private mosquitto on 127.0.0.1, for boxes without a broker of their own.
/// `mqtt.embedded` (bool, default true when `mqtt.url` is not given), `mqtt.embedded_port` (int, 1883),
/// `mqtt.embedded_dir` (path, `/var/lib/gatehouse/mosquitto`), `mqtt.embedded_binary` (path, `mosquitto` on
/// `PATH`, else in /usr/sbin or /usr/local/sbin).
public struct EmbeddedBrokerSettings: Sendable {
    /// The mosquitto executable.
    public var binary: String
    /// Loopback port it listens on.
    public var port: Int
    /// Its generated config, pid file and persistence database.
    public var directory: String

    /// nil unless `mqtt.embedded` (default: true when `mqtt.url` is not given).
    init?(_ source: ConfigSource, urlGiven: Bool) {
        let enabled = source.bool("mqtt.embedded", default: !urlGiven)
        port = source.int("mqtt.embedded_port", default: 1883, in: 1...65535)
        directory = source.string("mqtt.embedded_dir", default: "/var/lib/gatehouse/mosquitto")
        let binary = source.string("mqtt.embedded_binary") ?? Self.findOnPath("mosquitto", extra: ["/usr/sbin", "/usr/local/sbin"])
        guard enabled else { return nil }
        if urlGiven {
            source.problem("mqtt.embedded", "true runs a private broker on 127.0.0.1:\(port); remove mqtt.url, or set mqtt.embedded: false to use the broker at mqtt.url")
        }
        if !source.checksFiles {
            // A client of the embedded broker needs its port, not its executable.
            self.binary = binary ?? "mosquitto"
            return
        }
        guard let binary, FileManager.default.isExecutableFile(atPath: binary) else {
            source.problem("mqtt.embedded", "no mosquitto executable\(binary.map { " at \($0)" } ?? " on PATH") (apt-get install mosquitto), or set mqtt.url to an existing broker")
            return nil
        }
        self.binary = binary
    }

    /// The first executable `name` in `$PATH` or `extra` (Debian puts mosquitto in /usr/sbin).
    static func findOnPath(_ name: String, extra: [String]) -> String? {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        return (path + extra).map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}
