import ArgumentParser
import Foundation
import GatehouseProtocol

/// `gatehousectl`: the operator CLI for a Gatehouse fleet. It talks only to the MQTT broker, so it works against
/// every gateway that shares that broker and base topic.
@main
struct GatehouseCtl: AsyncParsableCommand {
    /// Command name, abstract and subcommands.
    static let configuration = CommandConfiguration(
        commandName: "gatehousectl",
        abstract: "Inspect and command Gatehouse devices and gateways through the MQTT broker.",
        discussion: """
            Exit status: 0 success, 1 negative outcome (device error, rejected, not found), \
            2 usage, configuration or broker error, 3 no answer in time.
            """,
        version: GatehouseVersion.current,
        subcommands: [
            Devices.self, Show.self, Send.self, SetCommand.self, Desired.self, Watch.self, Gateways.self, Kick.self, Token.self,
        ]
    )

    /// Parses the arguments and runs the subcommand; failures become one line on stderr and a documented exit
    /// status instead of ArgumentParser's defaults (usage errors exit 2, not 64).
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch let error as CtlError {
            Output.diagnostic(error.message)
            Self.exit(withError: ExitCode(error.code.rawValue))
        } catch {
            if exitCode(for: error) == .success || error is ExitCode {
                // --help, --version, and statuses whose output was already printed.
                Self.exit(withError: error)
            }
            Output.diagnostic(message(for: error))
            Output.note(usage(for: error))
            Self.exit(withError: ExitCode(CtlError.Code.usage.rawValue))
        }
    }
}

extension GatehouseCtl {
    /// The usage lines ArgumentParser prints with an error (they end with a pointer to `--help`).
    fileprivate static func usage(for error: any Error) -> String {
        let full = fullMessage(for: error)
        guard let range = full.range(of: "Usage:") else { return "See 'gatehousectl --help'." }
        return String(full[range.lowerBound...])
    }
}
