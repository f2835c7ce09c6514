/// `spool`: `dir` (path, default `/var/lib/gatehouse/spool`), `max_bytes` (size, 256MiB), `max_age`
/// (duration, 24h), `when_full` (`reject`: nack `spool_full`, or `drop_oldest`; default `reject`).
public struct SpoolSection: Sendable {
    public var dir: String
    public var maxBytes: Int
    public var maxAgeSeconds: Int
    public var dropOldest: Bool

    /// Reads `spool.*` from `source`, recording problems there.
    public init(_ source: ConfigSource) {
        dir = source.string("spool.dir", default: "/var/lib/gatehouse/spool")
        maxBytes = source.int("spool.max_bytes", default: 256 << 20, in: (64 << 10)...(1 << 50), units: ConfigSource.byteUnits)
        maxAgeSeconds = source.seconds("spool.max_age", default: 86400, in: 1...(3650 * 86400))
        let whenFull = source.string("spool.when_full", default: "reject")
        dropOldest = whenFull == "drop_oldest"
        if !["reject", "drop_oldest"].contains(whenFull) {
            source.problem("spool.when_full", "must be reject or drop_oldest, got \"\(whenFull)\"")
        }
    }
}
