import ArgumentParser
import GatehouseProtocol
import Mosquitto

/// `gatehousectl kick DEVICE`: asks the gateway holding a device to disconnect it (close 1008, reason `kicked`).
struct Kick: AsyncParsableCommand {
    /// Name and help.
    static let configuration = CommandConfiguration(
        abstract: "Disconnect a device through the gateway that holds it.",
        discussion: """
            The gateway comes from the device's retained availability (the device must be online) unless \
            --gateway is given. Prints 'ok' or 'error <code>: <message>'; --json prints the gateway's response. \
            Exit status: 0 ok, 1 error or device not online, 2 usage or broker error, 3 no response.
            """
    )

    /// Broker connection options.
    @OptionGroup var broker: BrokerOptions
    /// Output format (`--json`).
    @OptionGroup var output: OutputOptions

    /// The device id.
    @Argument(help: "Device id.")
    var device: String

    /// Gateway to ask, instead of the one named in the availability.
    @Option(help: "Ask this gateway, instead of the one the device's availability names.")
    var gateway: String?

    /// How long to wait for the gateway's answer.
    @Option(help: "How long to wait for the gateway's response.")
    var timeout = DurationArgument(milliseconds: 10_000)

    /// Runs the command.
    func run() async throws {
        try DeviceArgument.validate(device)
        if let gateway, !Identifiers.isValidGatewayID(gateway) {
            throw CtlError.usage("invalid gateway id '\(gateway)'")
        }
        let response = try await broker.withSession { session, inbox in
            let topics = session.topics
            let gateway = try await holdingGateway(session: session, inbox: &inbox)
            let id = "ctl-\(RandomID.hex(bytes: 6))"
            let responseTopic = topics.bridgeResponse(gateway, "kick")
            try await session.subscribe([responseTopic])
            let request = JSONValue.objectOf([("id", .string(id)), ("device", .string(device))])
            try await session.publish(topics.bridgeRequest(gateway, "kick"), request.serialized())
            let deadline = ContinuousClock.now + timeout.duration
            while let message = await inbox.next(before: deadline) {
                guard message.topic == responseTopic, let response = try? JSONValue(parsing: message.payload),
                    response["id"]?.stringValue == id
                else { continue }
                return response
            }
            throw CtlError(.noResponse, "no response from gateway \(gateway) within \(timeout); is it running?")
        }
        let ok = response["status"]?.stringValue == "ok"
        if output.json {
            Output.json(response)
        } else if ok {
            Output.line("ok")
        } else {
            let status = response["status"]?.stringValue ?? "error"
            let code = response["error"]?["code"]?.stringValue.map { " \($0)" } ?? ""
            let message = response["error"]?["message"]?.stringValue.map { ": \($0)" } ?? ""
            Output.line(status + code + message)
        }
        if !ok { throw ExitCode(CtlError.Code.failed.rawValue) }
    }

    /// `--gateway`, or the gateway named in the device's retained availability, which must be `online`.
    private func holdingGateway(session: BrokerSession, inbox: inout Inbox) async throws -> String {
        if let gateway { return gateway }
        try await session.subscribe([session.topics.availability(device)])
        let retained = await inbox.collectRetained(limit: .seconds(3)) { !$0.isEmpty }
        guard let message = retained.first, let availability = Availability.decode(message.payload) else {
            throw CtlError.failed("no such device: \(device)")
        }
        guard availability.state == .online else {
            let reason = availability.reason.map { ", reason \($0)" } ?? ""
            throw CtlError.failed(
                "\(device) is not connected (offline since \(TimeText.iso8601(ms: availability.ts))\(reason))"
            )
        }
        return availability.gateway
    }
}
