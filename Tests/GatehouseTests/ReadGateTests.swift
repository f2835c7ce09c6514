import Testing

@testable import Gatehouse

/// The one decision over the reasons to stop reading a device: the outbox, the device not reading, closing.
@Suite struct ReadGateTests {
    @Test func readsOnlyWhenNeitherTheOutboxNorTheDeviceSaysStop() {
        var gate = ReadGate()
        #expect(gate.reads)
        let recorded1 = gate.outbox(paused: true, order: 1)
        #expect(recorded1)
        #expect(!gate.reads)
        gate.writable(false)
        let recorded2 = gate.outbox(paused: false, order: 2)
        #expect(recorded2)
        #expect(!gate.reads)  // the outbox let go, but the device still reads nothing
        gate.writable(true)
        #expect(gate.reads)
    }

    @Test func anOlderOutboxDecisionIsIgnored() {
        var gate = ReadGate()
        let recorded3 = gate.outbox(paused: false, order: 3)
        #expect(recorded3)
        let recorded2 = gate.outbox(paused: true, order: 2)
        #expect(!recorded2)
        #expect(gate.reads && !gate.heldByOutbox)
    }

    @Test func closingReadsWhateverElseSaysStop() {
        var gate = ReadGate()
        _ = gate.outbox(paused: true, order: 1)
        gate.writable(false)
        gate.startClosing()
        #expect(gate.reads && gate.closing)
    }
}
