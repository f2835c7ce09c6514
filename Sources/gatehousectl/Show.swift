import ArgumentParser
import GatehouseProtocol
import Mosquitto

/// `gatehousectl show DEVICE`: everything the broker retains about one device.
struct Show: AsyncParsableCommand {
    /// Name and help.
    static let configuration = CommandConfiguration(
        abstract: "Show one device: availability, meta, desired and reported state, the pending delta, queued commands.",
        discussion: """
            Desired, reported and pending values are shown side by side per key, with the versions. \
            --json: {device, availability, meta, state, desired, delta, pending, pending_ids} with the retained \
            payloads as published (null when absent). Exit status 1 when the broker knows nothing about the device.
            """
    )

    /// Broker connection options.
    @OptionGroup var broker: BrokerOptions
    /// Output format (`--json`).
    @OptionGroup var output: OutputOptions

    /// The device id.
    @Argument(help: "Device id.")
    var device: String

    /// Longest time to wait for retained messages.
    @Option(help: "Longest time to wait for retained messages.")
    var wait = DurationArgument(milliseconds: 3000)

    /// Runs the command.
    func run() async throws {
        try DeviceArgument.validate(device)
        let (topics, found) = try await broker.withSession { session, inbox in
            let topics = session.topics
            try await session.subscribe([
                topics.availability(device), topics.meta(device), topics.state(device), topics.pendingFilter(device),
                topics.desired(device), topics.delta(device),
            ])
            return (topics, await inbox.collectRetained(limit: wait.duration))
        }
        var availability: JSONValue?
        var meta: JSONValue?
        var state: JSONValue?
        var desired: JSONValue?
        var delta: JSONValue?
        var pendingIDs: [String] = []
        for message in found {
            let value = try? JSONValue(parsing: message.payload)
            switch topics.parse(message.topic) {
            case .availability: availability = value
            case .meta: meta = value
            case .state: state = value
            case .desired: desired = value
            case .delta: delta = value
            case .pending(_, let id): pendingIDs.append(id)
            default: break
            }
        }
        guard availability != nil || meta != nil || state != nil || desired != nil || !pendingIDs.isEmpty else {
            throw CtlError.failed("no such device: \(device)")
        }
        if output.json {
            Output.json(
                .objectOf([
                    ("device", .string(device)),
                    ("availability", availability ?? .null),
                    ("meta", meta ?? .null),
                    ("state", state ?? .null),
                    ("desired", desired ?? .null),
                    ("delta", delta ?? .null),
                    ("pending", .number(pendingIDs.count)),
                    ("pending_ids", .array(pendingIDs.map { .string($0) })),
                ])
            )
            return
        }
        printHuman(availability: availability, meta: meta, state: state, pendingIDs: pendingIDs)
        if let desired { DesiredTable(desired: desired, state: state, delta: delta).print() }
    }

    private func printHuman(availability: JSONValue?, meta: JSONValue?, state: JSONValue?, pendingIDs: [String]) {
        var lines: [(String, String)] = [("device", device)]
        if let availability {
            var text = availability["state"]?.stringValue ?? "unknown"
            if let reason = availability["reason"]?.stringValue { text += " (\(reason))" }
            lines.append(("availability", text))
            lines.append(("gateway", availability["gateway"]?.stringValue ?? "-"))
            if let session = availability["session"]?.numberValue { lines.append(("session", session.text)) }
            if let ts = availability["ts"]?.numberValue?.int64Value {
                lines.append(("since", "\(TimeText.iso8601(ms: ts)) (\(TimeText.relative(ms: ts)))"))
            }
        } else {
            lines.append(("availability", "unknown (no retained availability)"))
        }
        if let meta {
            for key in ["kind", "model", "firmware"] {
                lines.append((key, meta[key]?.stringValue ?? "-"))
            }
            if let capabilities = meta["capabilities"], !capabilities.isNull {
                lines.append(("capabilities", capabilities.serializedString()))
            }
        }
        if let state {
            var text = (state["data"] ?? .null).serializedString()
            var details: [String] = []
            if let version = state["version"]?.numberValue { details.append("version \(version.text)") }
            if let ts = state["ts"]?.numberValue?.int64Value { details.append(TimeText.iso8601(ms: ts)) }
            if !details.isEmpty { text += " (\(details.joined(separator: ", ")))" }
            lines.append(("state", text))
        } else {
            lines.append(("state", "-"))
        }
        var pending = "\(pendingIDs.count)"
        if !pendingIDs.isEmpty { pending += " (\(pendingIDs.joined(separator: ", ")))" }
        // Queued commands (`pending/<id>`); what is pending of the desired state is shown apart, below.
        lines.append(("queued commands", pending))
        let width = lines.map(\.0.count).max() ?? 0
        for (key, value) in lines {
            Output.line(key + ":" + String(repeating: " ", count: width - key.count + 1) + value)
        }
    }
}

/// Checks device ids given on the command line, so no wildcard or extra level can reach a topic.
enum DeviceArgument {
    /// Throws a usage error unless `device` is a valid device id.
    static func validate(_ device: String) throws {
        guard Identifiers.isValidDeviceID(device) else {
            throw CtlError.usage(
                "invalid device id '\(device)': use 1-64 of A-Z a-z 0-9 . _ - "
                    + "starting with a letter or digit, not 'bridge'"
            )
        }
    }
}
