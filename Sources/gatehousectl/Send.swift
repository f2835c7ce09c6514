import ArgumentParser
import GatehouseProtocol

/// `gatehousectl send DEVICE COMMAND [key=value ...]`: runs one command on a device and prints its response.
struct Send: AsyncParsableCommand {
    /// Name and help.
    static let configuration = CommandConfiguration(
        abstract: "Send a command to a device and print its response.",
        discussion: """
            Values: 21.5 -> number, true/false -> boolean, null, JSON objects/arrays/strings as JSON, else text. \
            Prints 'ok <data>', '<status> <code>: <message>', or with --json the response object. \
            Exit status: 0 ok (or queued without --wait-final), 1 any other final status, 2 usage or broker \
            error, 3 no response within timeout + ttl + 5s.
            """
    )

    /// Broker connection options.
    @OptionGroup var broker: BrokerOptions
    /// Output format (`--json`).
    @OptionGroup var output: OutputOptions
    /// Parameters, timeout, TTL and command id.
    @OptionGroup var command: CommandOptions

    /// Target device.
    @Argument(help: "Device id.")
    var device: String

    /// Command name.
    @Argument(help: "Command name, e.g. set_setpoint.")
    var name: String

    /// Parameters.
    @Argument(help: ArgumentHelp("Command parameters.", valueName: "key=value"))
    var values: [String] = []

    /// Runs the command.
    func run() async throws {
        let params = try ParamArguments.parse(values, json: command.params)
        try await CommandRunner(device: device, command: name, params: params, options: command, json: output.json)
            .run(broker: broker)
    }
}
