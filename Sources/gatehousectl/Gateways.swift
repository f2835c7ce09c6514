import ArgumentParser
import GatehouseProtocol
import Mosquitto

/// `gatehousectl gateways`: the gateways on this broker, their retained state and their latest health report.
struct Gateways: AsyncParsableCommand {
    /// Name and help.
    static let configuration = CommandConfiguration(
        abstract: "List gateways: retained bridge state plus one health report from each online gateway.",
        discussion: """
            Table GATEWAY STATE SINCE DEVICES MSGS_IN/S SPOOL ('-' where no health report arrived). \
            --json: one array of {gateway, state, since, version, health} (health is the report as published, or null).
            """
    )

    /// Broker connection options.
    @OptionGroup var broker: BrokerOptions
    /// Output format (`--json`).
    @OptionGroup var output: OutputOptions

    /// How long to wait for health reports.
    @Option(help: "Longest time to wait for health reports (stops once every online gateway has reported).")
    var wait = DurationArgument(milliseconds: 2000)

    /// Runs the command.
    func run() async throws {
        let (base, rows) = try await broker.withSession { session, inbox in
            let topics = session.topics
            try await session.subscribe([topics.allBridgeStates, topics.allBridgeHealth])
            let start = ContinuousClock.now
            let deadline = start + wait.duration
            // Retained states arrive right after SUBACK; health is published every few seconds.
            let settle = start + .milliseconds(300)
            var rows: [String: GatewayRow] = [:]
            while ContinuousClock.now < deadline, !inbox.isClosed {
                if let message = await inbox.next(before: min(deadline, .now + .milliseconds(50))) {
                    switch topics.parse(message.topic) {
                    case .bridgeState(let gateway):
                        rows[gateway, default: GatewayRow(gateway: gateway)].state =
                            message.payload.isEmpty ? nil : BridgeState.decode(message.payload)
                    case .bridgeHealth(let gateway):
                        rows[gateway, default: GatewayRow(gateway: gateway)].health =
                            try? JSONValue(parsing: message.payload)
                    default:
                        break
                    }
                }
                // No retained state after the settle time means no gateway; offline ones send no health.
                if ContinuousClock.now >= settle, rows.values.allSatisfy(\.isComplete) { break }
            }
            let found = rows.values.filter { $0.state != nil || $0.health != nil }.sorted { $0.gateway < $1.gateway }
            return (topics.base, found)
        }
        if output.json {
            Output.json(.array(rows.map(\.json)))
            return
        }
        guard !rows.isEmpty else {
            Output.note("no gateways found under \(base)/bridge/")
            return
        }
        Output.table(
            ["GATEWAY", "STATE", "SINCE", "DEVICES", "MSGS_IN/S", "SPOOL"],
            rows.map { row in
                [
                    row.gateway,
                    row.state?.state.rawValue ?? "unknown",
                    row.state.map { TimeText.iso8601(ms: $0.ts) } ?? "-",
                    row.health?["devices_connected"]?.numberValue?.text ?? "-",
                    row.health?["messages_in_per_s"]?.numberValue.map { Self.rate($0) } ?? "-",
                    row.health?["spool_depth"]?.numberValue?.text ?? "-",
                ]
            }
        )
    }

    /// A rate with at most one decimal.
    private static func rate(_ number: JSONNumber) -> String {
        if number.isInteger { return number.text }
        return String((number.doubleValue * 10).rounded() / 10)
    }
}

/// One gateway as seen on the broker.
struct GatewayRow: Sendable {
    /// Gateway id.
    var gateway: String
    /// Retained `bridge/<gw>/state`.
    var state: BridgeState?
    /// Latest `bridge/<gw>/health`.
    var health: JSONValue?

    /// True when nothing more is expected: health seen, or the gateway is not online (it sends none).
    var isComplete: Bool {
        health != nil || (state != nil && state?.state != .online)
    }

    /// The `--json` object.
    var json: JSONValue {
        .objectOf([
            ("gateway", .string(gateway)),
            ("state", .string(orNull: state?.state.rawValue)),
            ("since", .number(orNull: state?.ts)),
            ("version", .string(orNull: state?.version)),
            ("health", health ?? .null),
        ])
    }
}
