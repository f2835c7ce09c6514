import Foundation
import Testing

/// The live tests trust that a started `TestBroker` is theirs: these provoke the ways it could not be.
@Suite struct TestBrokerTests {
    @Test func freePortsAreNeverHandedOutTwice() throws {
        let ports = try (0..<200).map { _ in try TestBroker.freePort() }
        #expect(Set(ports).count == ports.count)
    }

    @Test func aPortSomeoneElseListensOnIsNotAStartedBroker() async throws {
        let squatter = try await TestBroker.started()
        let broker = try TestBroker(port: squatter.port)
        #expect(TestBroker.canConnect(port: squatter.port))
        await #expect(throws: BrokerError.self) { try await broker.start() }
    }
}
