import Foundation
import Testing

/// The live tests trust that a started `TestBroker` is theirs: these provoke the ways it could not be.
@Suite struct TestBrokerTests {
    @Test func freePortsAreNeverHandedOutTwice() throws {
        let ports = try (0..<200).map { _ in try TestBroker.freePort() }
        #expect(Set(ports).count == ports.count)
    }

    @Test func freePortsAreOutsideTheEphemeralRange() throws {
        let text = try String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)
        let bounds = text.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        try #require(bounds.count == 2)
        let ports = try (0..<200).map { _ in try TestBroker.freePort() }
        #expect(ports.allSatisfy { !(bounds[0]...bounds[1]).contains($0) && $0 >= 1024 })
    }

    @Test func aPortSomeoneElseListensOnIsNotAStartedBroker() async throws {
        let squatter = try await TestBroker.started()
        let broker = try TestBroker(port: squatter.port)
        #expect(TestBroker.canConnect(port: squatter.port))
        await #expect(throws: BrokerError.self) { try await broker.start() }
    }
}
