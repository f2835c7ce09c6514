import ArgumentParser
import GatehouseProtocol
import Mosquitto

/// `gatehousectl desired DEVICE key=value ... [--if-version N] [--remove KEY]`: patches the device's desired
/// state (PROTOCOL.md 7) and prints the answer.
///
/// The patch carries an MQTT 5 Response Topic private to this run and the patch id as Correlation Data; the
/// public `response/desired` is watched too, matched by id. Exit status 0 only for `ok`.
struct Desired: AsyncParsableCommand {
    /// Name and help.
    static let configuration = CommandConfiguration(
        abstract: "Set (or remove) keys of a device's desired state and print the answer.",
        discussion: """
            The gateway keeps the desired state in the broker and sends the device what it does not report yet \
            when it connects, so this works while the device sleeps. Values as for 'send' (21.5 is a number, \
            '{"a":1}' an object). Prints 'ok version N', or 'rejected CODE: message' with exit status 1.
            """
    )

    /// Broker connection options.
    @OptionGroup var broker: BrokerOptions
    /// Output format (`--json`).
    @OptionGroup var output: OutputOptions

    /// Target device.
    @Argument(help: "Device id.")
    var device: String

    /// Keys to set.
    @Argument(help: ArgumentHelp("Desired values.", valueName: "key=value"))
    var values: [String] = []

    /// Keys to remove (each becomes `null` in the merge patch).
    @Option(name: .customLong("remove"), help: ArgumentHelp("Remove a key from the desired state (repeatable).", valueName: "key"))
    var removals: [String] = []

    /// Apply only at this version.
    @Option(name: .customLong("if-version"), help: "Apply only if the desired document is at exactly this version (0: none yet).")
    var ifVersion: Int64?

    /// Patch id.
    @Option(help: "Patch id (default: a random ctl-<hex> id).")
    var id: String?

    /// How long to wait for the answer.
    @Option(help: "How long to wait for the gateway's answer.")
    var timeout = DurationArgument(milliseconds: 10_000)

    /// Requires something to change.
    func validate() throws {
        if values.isEmpty, removals.isEmpty { throw ValidationError("nothing to change: give key=value arguments or --remove KEY") }
        if let ifVersion, ifVersion < 0 { throw ValidationError("--if-version must be 0 or more") }
        if let id, !Identifiers.isValidCommandID(id) { throw ValidationError("invalid --id '\(id)': use 1-128 of A-Z a-z 0-9 . _ : -") }
    }

    /// Runs the command.
    func run() async throws {
        try DeviceArgument.validate(device)
        var data = try ParamArguments.parse(values, json: nil)
        for key in removals { data[key] = .null }
        let id = self.id ?? "ctl-\(RandomID.hex(bytes: 6))"
        let request = DesiredPatchRequest(id: CommandID(json: .string(id)), data: data, version: ifVersion)
        let answer = try await broker.withSession { session, inbox in
            let topics = session.topics
            let replyTopic = "\(topics.base)/ctl/\(RandomID.hex(bytes: 8))/reply"
            let responseTopic = topics.response(device, Topics.desiredCommand)
            try await session.subscribe([replyTopic, responseTopic])
            try await session.publish(
                topics.desiredSet(device), request.encoded(),
                properties: MQTTProperties(responseTopic: replyTopic, correlationData: Array(id.utf8)))
            let deadline = ContinuousClock.now + timeout.duration
            while let message = await inbox.next(before: deadline) {
                guard message.topic == replyTopic || message.topic == responseTopic,
                    let response = try? JSONValue(parsing: message.payload), response["id"]?.stringValue == id
                else { continue }
                return response
            }
            throw CtlError(.noResponse, "no answer to the patch (id \(id)) for \(device) within \(timeout); is a gateway running on base topic '\(topics.base)'?")
        }
        let ok = answer["status"]?.stringValue == CommandStatus.ok.rawValue
        if output.json {
            Output.json(answer)
        } else if ok {
            Output.line("ok version \(answer["data"]?["version"]?.serializedString() ?? "?")")
        } else {
            let code = answer["error"]?["code"]?.stringValue ?? "error"
            let message = answer["error"]?["message"]?.stringValue ?? ""
            Output.line("\(answer["status"]?.stringValue ?? "?") \(code): \(message)")
        }
        if !ok { throw ExitCode(CtlError.Code.failed.rawValue) }
    }
}
