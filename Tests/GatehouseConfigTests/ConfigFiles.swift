import Foundation

/// A scratch directory with the files a valid config names: a fleet key, a password file, a CA file.
struct ConfigFiles {
    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try write("fleet.key", "fleet-secret-of-32-bytes-length\n")
    }

    /// Writes `contents` to `name` in the directory and returns its path.
    @discardableResult
    func write(_ name: String, _ contents: String) throws -> String {
        let url = directory.appendingPathComponent(name)
        try Data(contents.utf8).write(to: url)
        return url.path
    }

    /// The path of `name` in the directory.
    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// YAML for `auth.key_file` and an embedded broker that needs no mosquitto on the test machine.
    var baseYAML: String {
        """
        auth: {key_file: \(path("fleet.key"))}
        mqtt: {embedded_binary: /bin/sh}

        """
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }
}
