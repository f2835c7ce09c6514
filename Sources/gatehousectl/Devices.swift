import ArgumentParser
import GatehouseProtocol
import Mosquitto

/// `gatehousectl devices`: every device known to the broker, from the retained availability and meta messages.
struct Devices: AsyncParsableCommand {
    /// Name and help.
    static let configuration = CommandConfiguration(
        abstract: "List devices known to the broker (retained availability, meta and delta).",
        discussion: """
            Human output: a table ID KIND STATE GATEWAY SINCE DELTA (since = last availability change, UTC; \
            DELTA 'pending N' when N desired keys are not reported yet). --json: one array of {device, kind, \
            state, gateway, session, since, reason, desired_version, delta_pending}; since is Unix ms.
            """
    )

    /// Broker connection options.
    @OptionGroup var broker: BrokerOptions
    /// Output format (`--json`).
    @OptionGroup var output: OutputOptions

    /// Longest time to wait for retained messages.
    @Option(help: "Longest time to wait for retained messages (stops earlier once 300 ms pass without one).")
    var wait = DurationArgument(milliseconds: 3000)

    /// Runs the command.
    func run() async throws {
        let (topics, found) = try await broker.withSession { session, inbox in
            try await session.subscribe([session.topics.allAvailability, session.topics.allMeta, session.topics.allDelta])
            return (session.topics, await inbox.collectRetained(limit: wait.duration))
        }
        let rows = DeviceRow.build(from: found, topics: topics)
        if output.json {
            Output.json(.array(rows.map(\.json)))
            return
        }
        guard !rows.isEmpty else {
            Output.note("no devices under \(topics.base)/")
            return
        }
        Output.table(
            ["ID", "KIND", "STATE", "GATEWAY", "SINCE", "DELTA"],
            rows.map { row in
                [
                    row.device,
                    row.meta?.kind ?? "-",
                    row.availability?.state.rawValue ?? "unknown",
                    row.availability?.gateway ?? "-",
                    row.availability.map { TimeText.iso8601(ms: $0.ts) } ?? "-",
                    row.delta.map { $0.data.isEmpty ? "in sync" : "pending \($0.data.count)" } ?? "-",
                ]
            }
        )
    }
}

/// One device as seen in retained messages.
struct DeviceRow: Sendable {
    /// Device id.
    var device: String
    /// Last retained availability, if any.
    var availability: Availability?
    /// Last retained meta, if any.
    var meta: DeviceMeta?
    /// Last retained delta of the desired state, if any.
    var delta: DeltaDocument?

    /// The `--json` object.
    var json: JSONValue {
        .objectOf([
            ("device", .string(device)),
            ("kind", .string(orNull: meta?.kind)),
            ("state", .string(orNull: availability?.state.rawValue)),
            ("gateway", .string(orNull: availability?.gateway)),
            ("session", .number(orNull: availability?.session)),
            ("since", .number(orNull: availability?.ts)),
            ("reason", .string(orNull: availability?.reason)),
            ("desired_version", .number(orNull: delta?.version)),
            ("delta_pending", .bool(!(delta?.data.isEmpty ?? true))),
        ])
    }

    /// Groups availability and meta messages by device, sorted by id. Undecodable payloads are ignored.
    static func build(from messages: [MQTTMessage], topics: Topics) -> [DeviceRow] {
        var rows: [String: DeviceRow] = [:]
        for message in messages {
            let payload = message.payload
            switch topics.parse(message.topic) {
            case .availability(let device):
                guard let availability = Availability.decode(payload) else { continue }
                rows[device, default: DeviceRow(device: device)].availability = availability
            case .meta(let device):
                guard let meta = DeviceMeta.decode(payload) else { continue }
                rows[device, default: DeviceRow(device: device)].meta = meta
            case .delta(let device):
                // A delta alone (no availability or meta) is a device that never connected: listed too.
                guard let delta = DeltaDocument.decode(payload) else { continue }
                rows[device, default: DeviceRow(device: device)].delta = delta
            default:
                continue
            }
        }
        return rows.values.sorted { $0.device < $1.device }
    }
}
