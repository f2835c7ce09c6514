import ArgumentParser
import GatehouseProtocol
import Mosquitto

/// `gatehousectl watch [DEVICE]`: live telemetry, state, desired state and delta, events, availability, meta,
/// responses and media.
struct Watch: AsyncParsableCommand {
    /// Name and help.
    static let configuration = CommandConfiguration(
        abstract: "Print live device traffic, one line per message.",
        discussion: """
            Lines look like '14:03:07.412 thermo-1 telemetry {"temperature":21.3}' (local receive time; for \
            telemetry, state and events the payload's data is shown; for desired and delta 'v4 {"setpoint":21}', the \
            delta with the reported state's version too). Media: '<dev> media/<stream> N bytes \
            <content-type>'. --json: one line per message, {topic, device, kind, ts, payload} with ts the receive \
            time in Unix ms (media lines carry bytes and content_type instead of a payload). Retained messages \
            present at start are skipped unless --retained. With --count and --duration together, exit status 3 \
            means fewer than N messages arrived in time.
            """
    )

    /// Broker connection options.
    @OptionGroup var broker: BrokerOptions
    /// Output format (`--json`).
    @OptionGroup var output: OutputOptions

    /// Only this device.
    @Argument(help: "Only this device (default: all devices).")
    var device: String?

    /// Stop after N messages.
    @Option(help: "Exit after N messages.")
    var count: Int?

    /// Stop after this long.
    @Option(help: "Exit after this long, e.g. 10s (plain numbers are seconds).")
    var duration: DurationArgument?

    /// Include retained messages present at start.
    @Flag(help: "Also print the retained availability, meta and state present when watching starts.")
    var retained = false

    /// Checks the option values.
    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
    }

    /// Runs the command.
    func run() async throws {
        if let device { try DeviceArgument.validate(device) }
        let printed = try await broker.withSession { session, inbox in
            let topics = session.topics
            let level = device ?? "+"
            let base = topics.base
            try await session.subscribe(
                ["telemetry", "state", "desired", "delta", "event/+", "availability", "meta", "response/+", "media/+"].map {
                    "\(base)/\(level)/\($0)"
                }
            )
            let deadline = duration.map { ContinuousClock.now + $0.duration }
            var printed = 0
            while let message = await inbox.next(before: deadline) {
                if message.retain, !retained { continue }
                // Retained payloads are cleared with empty messages; those carry nothing to show.
                if message.payload.isEmpty { continue }
                guard let line = WatchLine(message, topics: topics) else { continue }
                if output.json {
                    Output.json(line.json)
                } else {
                    Output.line(line.text)
                }
                printed += 1
                if let count, printed >= count { break }
            }
            if inbox.isClosed { throw CtlError.usage("the broker connection ended") }
            return printed
        }
        if let count, printed < count {
            let waited = duration?.description ?? "the time given"
            throw CtlError(.noResponse, "only \(printed) of \(count) messages arrived within \(waited)")
        }
    }
}

/// One message as `watch` shows it.
struct WatchLine {
    /// Full topic.
    var topic: String
    /// Device id.
    var device: String
    /// `telemetry`, `state`, `meta`, `availability`, `event/<name>`, `response/<command>`, `media/<stream>`.
    var kind: String
    /// Receive time, Unix ms.
    var receivedMs: Int64
    /// The parsed payload (JSON or, when not JSON, its text); nil for media.
    var payload: JSONValue?
    /// Media size and content type.
    var media: (bytes: Int, contentType: String)?

    /// Classifies `message`; nil for topics that are not device output under this base.
    init?(_ message: MQTTMessage, topics: Topics, receivedMs: Int64 = TimeText.nowMs()) {
        self.topic = message.topic
        self.receivedMs = receivedMs
        switch topics.parse(message.topic) {
        case .telemetry(let device): (self.device, self.kind) = (device, "telemetry")
        case .state(let device): (self.device, self.kind) = (device, "state")
        case .desired(let device): (self.device, self.kind) = (device, "desired")
        case .delta(let device): (self.device, self.kind) = (device, "delta")
        case .meta(let device): (self.device, self.kind) = (device, "meta")
        case .availability(let device): (self.device, self.kind) = (device, "availability")
        case .event(let device, let name): (self.device, self.kind) = (device, "event/\(name)")
        case .response(let device, let command): (self.device, self.kind) = (device, "response/\(command)")
        case .media(let device, let stream):
            (self.device, self.kind) = (device, "media/\(stream)")
            self.media = (message.payload.count, message.properties.contentType ?? "application/octet-stream")
            return
        default:
            return nil
        }
        if let value = try? JSONValue(parsing: message.payload) {
            self.payload = value
        } else {
            self.payload = .string(String(decoding: message.payload, as: UTF8.self))
        }
    }

    /// The `--json` line.
    var json: JSONValue {
        var pairs: [(String, JSONValue)] = [
            ("topic", .string(topic)),
            ("device", .string(device)),
            ("kind", .string(kind)),
            ("ts", .number(JSONNumber(receivedMs))),
            ("payload", payload ?? .null),
        ]
        if let media {
            pairs.append(("bytes", .number(media.bytes)))
            pairs.append(("content_type", .string(media.contentType)))
        }
        return .objectOf(pairs)
    }

    /// The human line.
    var text: String {
        let prefix = "\(TimeText.timeOfDay(ms: receivedMs)) \(device) \(kind)"
        if let media {
            return "\(prefix) \(media.bytes) bytes \(media.contentType)"
        }
        guard let payload else { return prefix }
        return "\(prefix) \(summary(payload))"
    }

    /// What is worth reading: the `data` of telemetry, state and events; a sentence for availability; the whole
    /// payload otherwise.
    private func summary(_ payload: JSONValue) -> String {
        if kind == "availability", let state = payload["state"]?.stringValue {
            var details: [String] = []
            if let gateway = payload["gateway"]?.stringValue { details.append("gateway \(gateway)") }
            if let session = payload["session"]?.numberValue { details.append("session \(session.text)") }
            if let reason = payload["reason"]?.stringValue { details.append("reason \(reason)") }
            return details.isEmpty ? state : "\(state) (\(details.joined(separator: ", ")))"
        }
        if kind == "desired" || kind == "delta", let data = payload["data"] {
            let version = payload["version"]?.serializedString() ?? "?"
            let state = kind == "delta" ? " (state v\(payload["state_version"]?.serializedString() ?? "?"))" : ""
            let pending = kind == "delta" && data.objectValue?.isEmpty == true ? " in sync" : ""
            return "v\(version)\(state) \(data.serializedString())\(pending)"
        }
        if kind == "telemetry" || kind == "state" || kind.hasPrefix("event/"), let data = payload["data"] {
            return data.serializedString()
        }
        if case .string(let text) = payload { return text }
        return payload.serializedString()
    }
}
