import Foundation
import Logging
import Mosquitto
import CoreMetrics
import GatehouseProtocol
import Metrics
import Synchronization

/// The gateway's counters, through swift-metrics (exported by swift-prometheus on `/metrics`); the per-message ones
/// are counted in stripes first, which also give the per-second rates of the health topic and the status page.
final class GatewayMetrics: Sendable {
    private let connections = Gauge(label: "gatehouse_devices_connected")
    /// What every device message adds to: messages and bytes in by ``InType``, out by the index of the type in
    /// `outTypes` (a string key would be hashed each time), and acks, counted in stripes (``PerMessage``) and added
    /// to their counters when read (`settle`).
    private let perMessage = StripedCounts(count: PerMessage.count)
    /// The counter of each count in `perMessage`.
    private let perMessageCounters: [Counter]
    /// How much of each count its counter has been given.
    private let settled: Mutex<[Int]>
    private let badMessages = Counter(label: "gatehouse_bad_messages_total")
    private let commandsDelivered = Counter(label: "gatehouse_commands_delivered_total")
    private let commandRoundTrip = Timer(label: "gatehouse_command_round_trip_seconds")
    private let spoolEntries = Gauge(label: "gatehouse_spool_entries")
    private let spoolBytes = Gauge(label: "gatehouse_spool_bytes")
    private let spoolOldestAge = Gauge(label: "gatehouse_spool_oldest_age_seconds")
    private let spoolAvailable = Gauge(label: "gatehouse_spool_available")
    private let spoolDroppedFull = Counter(label: "gatehouse_spool_dropped_total", dimensions: [("reason", "full")])
    private let spoolDroppedExpired = Counter(label: "gatehouse_spool_dropped_total", dimensions: [("reason", "max_age")])
    private let spoolCounted = Mutex<(dropped: Int, expired: Int)>((0, 0))
    private let spoolDroppedRefused = Counter(label: "gatehouse_spool_dropped_total", dimensions: [("reason", "refused")])
    private let replayHolds = Counter(label: "gatehouse_spool_replay_holds_total")
    private let brokerConnected = Gauge(label: "gatehouse_broker_connected")
    private let brokerConnects = Counter(label: "gatehouse_broker_connects_total")
    private let devicesWithDeltaGauge = Gauge(label: "gatehouse_desired_devices_with_delta")
    private let revocationUnreadable = Gauge(label: "gatehouse_revocation_file_unreadable")
    /// Rates between two health reports (`takeRates`), with the same estimator as the status page's.
    private let sinceLastReport = Mutex((inRate: RateEstimate(nowMs: nowMs()), outRate: RateEstimate(nowMs: nowMs())))
    private let recent = Mutex((inRate: RateEstimate(nowMs: nowMs()), outRate: RateEstimate(nowMs: nowMs())))

    /// `type` of what devices send; `invalid` is what could not be parsed (bytes only).
    enum InType: Int, CaseIterable {
        // `invalid` last: it has no message counter.
        case hello, telemetry, state, event, response, media, invalid

        /// The `type` labels, in the cases' order: spelled out, so that renaming a case renames no label.
        private static let labels = ["hello", "telemetry", "state", "event", "response", "media", "invalid"]

        /// The `type` label.
        var name: String { Self.labels[rawValue] }

        init(_ body: DeviceMessageBody) {
            self =
                switch body {
                case .hello: .hello
                case .telemetry: .telemetry
                case .state: .state
                case .event: .event
                case .response: .response
                }
        }
    }
    /// `type` of what the gateway publishes: the topic level after the device id, `bridge`, or `other`
    /// (Home Assistant discovery, MQTT 5 response topics).
    static let outTypes = ["telemetry", "state", "event", "meta", "availability", "media", "response", "pending", "desired", "delta", "bridge", "other"]

    private static let outTypeBytes = outTypes.map { Array($0.utf8) }
    static let telemetryTypeIndex = outTypes.firstIndex(of: "telemetry")!
    private static let bridge = outTypes.firstIndex(of: "bridge")!
    private static let other = outTypes.firstIndex(of: "other")!

    /// The index in `outTypes` of the type of a topic the gateway publishes under `base`, read from the topic's bytes
    /// in place (this runs for every publish).
    static func outTypeIndex(topic: String, base: String) -> Int {
        var (topic, base) = (topic, base)  // `withUTF8` is mutating; a native string's bytes are not copied
        return topic.withUTF8 { topic in base.withUTF8 { base in outTypeIndex(topic: topic, base: base) } }
    }

    private static func outTypeIndex(topic: UnsafeBufferPointer<UInt8>, base: UnsafeBufferPointer<UInt8>) -> Int {
        let slash = UInt8(ascii: "/")
        guard topic.count > base.count, topic[base.count] == slash, same(topic[..<base.count], base[...]) else { return other }
        let device = base.count + 1
        guard let end = topic[device...].firstIndex(of: slash) else { return other }
        if outTypeBytes[bridge].withUnsafeBufferPointer({ same(topic[device..<end], $0[...]) }) { return bridge }
        let level = topic[(end + 1)...].prefix { $0 != slash }
        return outTypeBytes.firstIndex { type in type.withUnsafeBufferPointer { same(level, $0[...]) } } ?? other
    }

    /// The same bytes, lengths compared first (`elementsEqual` walks both, element by element, through generic code).
    private static func same(_ bytes: Slice<UnsafeBufferPointer<UInt8>>, _ other: Slice<UnsafeBufferPointer<UInt8>>) -> Bool {
        bytes.count == other.count && (bytes.isEmpty || memcmp(UnsafeBufferPointer(rebasing: bytes).baseAddress!, UnsafeBufferPointer(rebasing: other).baseAddress!, bytes.count) == 0)
    }

    init() {
        // Indexed by `InType`'s raw value.
        func counters(_ label: String, _ types: [String]) -> [Counter] {
            types.map { Counter(label: label, dimensions: [("type", $0)]) }
        }
        perMessageCounters =
            counters("gatehouse_device_messages_in_total", InType.allCases.dropLast().map(\.name))
            + counters("gatehouse_device_bytes_in_total", InType.allCases.map(\.name))
            + counters("gatehouse_mqtt_messages_out_total", Self.outTypes)
            + counters("gatehouse_mqtt_bytes_out_total", Self.outTypes)
            + [Counter(label: "gatehouse_acks_total")]
        assert(perMessageCounters.count == PerMessage.count)
        settled = Mutex(Array(repeating: 0, count: PerMessage.count))
    }

    /// Where each count is in `perMessage` (and its counter in `perMessageCounters`).
    private enum PerMessage {
        static let messagesIn = 0
        static let bytesIn = messagesIn + InType.allCases.count - 1  // no message count for `invalid`
        static let messagesOut = bytesIn + InType.allCases.count
        static let bytesOut = messagesOut + outTypes.count
        static let acks = bytesOut + outTypes.count
        static let count = acks + 1
    }

    /// Gives the per-message counters what was counted since the last call (before `/metrics` is read).
    private func settle() {
        settled.withLock { settled in
            for index in settled.indices {
                let total = perMessage.sum(at: index)
                if total > settled[index] { perMessageCounters[index].increment(by: total - settled[index]) }
                settled[index] = total
            }
        }
    }

    /// Messages in and out so far, all types.
    private var totals: (in: Int, out: Int) {
        func sum(_ range: Range<Int>) -> Int { range.reduce(0) { $0 + perMessage.sum(at: $1) } }
        return (sum(PerMessage.messagesIn..<PerMessage.bytesIn), sum(PerMessage.messagesOut..<PerMessage.bytesOut))
    }

    func connected(_ count: Int) { connections.record(count) }

    /// A well-formed message of `type` that the gateway takes on.
    func received(_ type: InType) {
        guard type != .invalid else { return assertionFailure("an invalid message is counted in bytes only") }
        perMessage.add(1, at: PerMessage.messagesIn + type.rawValue)
    }

    /// Bytes of one device message as it arrived (compressed, if it was), by `type`.
    func receivedBytes(_ count: Int, type: InType) { perMessage.add(count, at: PerMessage.bytesIn + type.rawValue) }

    /// One message published, of the type at `typeIndex` in `outTypes` (`outTypeIndex`).
    func published(typeIndex: Int, bytes: Int) {
        perMessage.add(1, at: PerMessage.messagesOut + typeIndex)
        perMessage.add(bytes, at: PerMessage.bytesOut + typeIndex)
    }

    func acked() { perMessage.add(1, at: PerMessage.acks) }

    func nacked(_ code: NackCode) {
        Counter(label: "gatehouse_nacks_total", dimensions: [("code", code.rawValue)]).increment()
    }

    func badMessage() { badMessages.increment() }

    func closed(_ reason: OfflineReason) {
        Counter(label: "gatehouse_disconnects_total", dimensions: [("reason", reason.rawValue)]).increment()
    }

    func refusedConnection(_ status: Int) {
        Counter(label: "gatehouse_connections_refused_total", dimensions: [("status", String(status))]).increment()
    }

    /// A limit refused something: `rate` (per-device message/byte rate), `connects_per_s`,
    /// `max_connections`, `handshake_timeout`.
    func limitHit(_ limit: String) {
        Counter(label: "gatehouse_limit_hits_total", dimensions: [("limit", limit)]).increment()
    }

    /// 1 while `auth.revoked_file` cannot be read and the last list read stays in force.
    func revocationFileUnreadable(_ unreadable: Bool) { revocationUnreadable.record(unreadable ? 1 : 0) }

    func commandDelivered() { commandsDelivered.increment() }

    func commandFinished(_ status: CommandStatus, latencyMs: Int64?) {
        Counter(label: "gatehouse_command_responses_total", dimensions: [("status", status.rawValue)]).increment()
        if let latencyMs { commandRoundTrip.recordMilliseconds(latencyMs) }
    }

    /// One `desired/set` answered: `outcome` is `ok` or the rejection code.
    func desiredPatch(_ outcome: String) {
        Counter(label: "gatehouse_desired_patches_total", dimensions: [("outcome", outcome)]).increment()
    }

    /// Devices whose known delta is not empty.
    func devicesWithDelta(_ count: Int) { devicesWithDeltaGauge.record(count) }

    /// A message acked from the spool (replayed, or written ahead) that the broker refused for good: dropped.
    func spooledMessageRefused() { spoolDroppedRefused.increment() }

    /// The replay held after the broker refused a spooled message for a reason that may pass.
    func replayHeld() { replayHolds.increment() }

    /// The spool and broker link as of now, and the per-message counts (called when `/metrics` is scraped).
    func record(spool: Spool.Stats, brokerConnected connected: Bool) {
        settle()
        spoolEntries.record(spool.depth)
        spoolBytes.record(spool.bytes)
        spoolOldestAge.record(Double(spool.oldestAgeMs) / 1000)
        spoolAvailable.record(spool.problem == nil ? 1 : 0)
        brokerConnected.record(connected ? 1 : 0)
        let (dropped, expired) = spoolCounted.withLock { counted in
            defer { counted = (spool.dropped, spool.expired) }
            return (spool.dropped - counted.dropped, spool.expired - counted.expired)
        }
        if dropped > 0 { spoolDroppedFull.increment(by: dropped) }
        if expired > 0 { spoolDroppedExpired.increment(by: expired) }
    }

    /// Every accepted broker connection, the first one included.
    func brokerConnectionAccepted() { brokerConnects.increment() }

    /// Messages per second in and out lately, for the status page (apart from the health topic's figures).
    func recentRates(nowMs: Int64) -> (inPerSecond: Double, outPerSecond: Double) {
        let counts = totals
        return recent.withLock { ($0.inRate.update(count: counts.0, nowMs: nowMs), $0.outRate.update(count: counts.1, nowMs: nowMs)) }
    }

    /// Messages per second in and out since the previous call (whole numbers, for the health report).
    func takeRates() -> (inPerSecond: Double, outPerSecond: Double) {
        let counts = totals
        let now = nowMs()
        return sinceLastReport.withLock {
            ($0.inRate.update(count: counts.0, nowMs: now, windowMs: 1).rounded(), $0.outRate.update(count: counts.1, nowMs: now, windowMs: 1).rounded())
        }
    }
}
