/// The release version of every Gatehouse program (gateway bridge state, `/api/status`, `gatehousectl
/// --version`, `gatehouse --version`): the one place it is written.
public enum GatehouseVersion {
    /// The version, e.g. `1.0.0`.
    public static let current = "1.0.0"
}
