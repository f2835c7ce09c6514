import Testing

@testable import GatehouseProtocol

@Suite("Command requests")
struct CommandRequestTests {
    private func parse(_ text: String) -> Result<CommandRequest, CommandRequestError> {
        CommandRequestParser.parseRequest(Array(text.utf8))
    }

    @Test func boundsAreInclusive() throws {
        let request = try parse(#"{"timeout_ms":86400000,"ttl_ms":2592000000}"#).get()
        #expect(request.timeoutMs == 86_400_000)
        #expect(request.ttlMs == 2_592_000_000)
        #expect(try parse(#"{"timeout_ms":1,"ttl_ms":0}"#).get().ttlMs == 0)
    }

    @Test(arguments: [
        #"{"timeout_ms":0}"#, #"{"timeout_ms":86400001}"#, #"{"timeout_ms":9223372036854775807}"#, #"{"timeout_ms":-1}"#,
        #"{"ttl_ms":-1}"#, #"{"ttl_ms":2592000001}"#, #"{"ttl_ms":9223372036854775807}"#, #"{"ttl_ms":1e300}"#,
        #"{"timeout_ms":1.5}"#,
    ])
    func outOfBoundsIsABadRequest(text: String) {
        guard case .failure(let error) = parse(text) else {
            Issue.record("accepted \(text)")
            return
        }
        #expect(error.message.contains("_ms must be an integer"))
    }
}
