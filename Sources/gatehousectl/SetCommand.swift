import ArgumentParser
import GatehouseProtocol

/// `gatehousectl set DEVICE key=value ...`: the `set` command, i.e. `send DEVICE set key=value ...`.
///
/// The gateway treats `<base>/<dev>/set` as the command `set`; going through `request/set` instead gives the CLI
/// a response to wait for and print.
struct SetCommand: AsyncParsableCommand {
    /// Name and help.
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Change device settings (the 'set' command) and print the response.",
        discussion: "Same values, output and exit status as 'send DEVICE set key=value ...'."
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

    /// Settings.
    @Argument(help: ArgumentHelp("Settings to change.", valueName: "key=value"))
    var values: [String] = []

    /// Requires something to set.
    func validate() throws {
        if values.isEmpty, command.params == nil {
            throw ValidationError("nothing to set: give key=value arguments or --params")
        }
    }

    /// Runs the command.
    func run() async throws {
        let params = try ParamArguments.parse(values, json: command.params)
        try await CommandRunner(device: device, command: "set", params: params, options: command, json: output.json)
            .run(broker: broker)
    }
}
