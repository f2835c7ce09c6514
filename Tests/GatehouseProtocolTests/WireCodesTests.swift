import Testing

@testable import GatehouseProtocol

@Suite("Wire codes")
struct WireCodesTests {
    @Test("raw values are the wire values")
    func rawValues() {
        #expect(CloseCode.replaced.rawValue == 4000)
        #expect(CloseCode.tokenExpired.rawValue == 4001)
        #expect(CloseCode.invalidUTF8.rawValue == 1007)
        #expect(NackCode.badMessage.rawValue == "bad_message")
        #expect(NackCode.brokerRejected.rawValue == "broker_rejected")
        #expect(OfflineReason.allCases.count == 11)
        #expect(OfflineReason.heartbeatTimeout.rawValue == "heartbeat_timeout")
        #expect(OfflineReason.gatewayRestart.rawValue == "gateway_restart")
        #expect(CommandErrorCode.queueFull.rawValue == "queue_full")
        #expect(DeviceKind.thermostat == "thermostat")
    }

    @Test("only queued is not final")
    func finalStatuses() {
        #expect(!CommandStatus.queued.isFinal)
        for status in [CommandStatus.ok, .error, .rejected, .timeout, .offline, .expired] {
            #expect(status.isFinal)
        }
    }
}
