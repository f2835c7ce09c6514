import GatehouseProtocol

/// `auth`: `key_file` (path, default `/etc/gatehouse/fleet.key` unless `key_files` is set: the fleet HMAC key
/// for tokens without `kid`), `key_files` (mapping key id → path, none: a token with that `kid` is checked
/// with that key; several keys valid at once while rotating), `revoked_file` (path, none: device ids or
/// `jti`s, one per line). At least one key is needed. Key files are read by the `SecretFile` rule, and each key
/// must be at least `FleetKey.minimumLength` (16) bytes long.
public struct AuthSection: Sendable {
    public var keyFile: String?
    public var keyFiles: [String: String]
    public var revokedFile: String?

    /// Reads `auth.*` from `source`, recording problems there.
    public init(_ source: ConfigSource) {
        keyFiles = source.mapping("auth.key_files")
        let defaultKey = "/etc/gatehouse/fleet.key"
        keyFile = source.string("auth.key_file") ?? (keyFiles.isEmpty ? defaultKey : nil)
        revokedFile = source.string("auth.revoked_file")
        guard source.checksFiles else { return }
        if let keyFile { Self.check(keyFile, key: "auth.key_file", source: source) }
        for (id, file) in keyFiles.sorted(by: { $0.key < $1.key }) { Self.check(file, key: "auth.key_files.\(id)", source: source) }
    }

    private static func check(_ file: String, key: String, source: ConfigSource) {
        do {
            if let weakness = FleetKey.weakness(length: try SecretFile.bytes(atPath: file).count) {
                source.problem(key, "\(file) \(weakness) (create one: head -c 32 /dev/urandom | base64 > \(file); chmod 600 \(file))")
            }
        } catch {
            source.problem(key, "cannot read the fleet key \(file) (create one: head -c 32 /dev/urandom | base64 > \(file); chmod 600 \(file))")
        }
    }
}
