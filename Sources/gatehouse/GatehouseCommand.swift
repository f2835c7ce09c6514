import ArgumentParser
import Foundation
import Gatehouse
import Logging

/// `gatehouse --config FILE` runs the gateway; `gatehouse --check-config FILE` validates a config.
@main
struct GatehouseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatehouse",
        abstract: "IoT device gateway: WebSocket devices ⇄ MQTT broker.",
        discussion: "Every config key can also be set as GATEHOUSE_<SECTION>_<KEY>, e.g. GATEHOUSE_MQTT_URL.",
        version: Gateway.releaseVersion
    )

    @Option(name: .long, help: "The gateway's YAML config file.")
    var config: String?

    @Option(name: .customLong("check-config"), help: "Validate a config file, print every problem, and exit.")
    var checkConfig: String?

    mutating func run() async throws {
        if let file = checkConfig {
            do {
                _ = try GatewayConfig.load(file: file)
                print("\(file): ok")
                return
            } catch {
                FileHandle.standardError.write(Data((error.description + "\n").utf8))
                throw ExitCode(2)
            }
        }
        guard let file = config ?? ProcessInfo.processInfo.environment["GATEHOUSE_CONFIG"] else {
            throw ValidationError("give --config FILE (or --check-config FILE)")
        }
        let settings: GatewayConfig
        do {
            settings = try GatewayConfig.load(file: file)
        } catch {
            FileHandle.standardError.write(Data((error.description + "\n").utf8))
            throw ExitCode(2)
        }
        LogOutput.bootstrap(level: settings.log.level, format: settings.log.format)
        let logger = Logger(label: "gatehouse")
        do {
            try await GatewayApplication.run(config: settings, configFile: file, logger: logger)
        } catch {
            logger.critical("gatehouse stopped: \(error)")
            throw ExitCode(1)
        }
    }
}
