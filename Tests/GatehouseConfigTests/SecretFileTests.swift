import GatehouseProtocol
import Mosquitto
import Testing

@testable import GatehouseConfig

@Suite struct SecretFileTests {
    @Test("one trailing \\n is removed, nothing else", arguments: [
        ("pw\n", "pw"), ("pw", "pw"), ("pw\n\n", "pw\n"), ("pw\r\n", "pw\r"), ("\npw\n", "\npw"), (" pw \n", " pw "), ("\n", ""),
    ])
    func rule(_ contents: String, _ secret: String) throws {
        #expect(SecretFile.secret(from: Array(contents.utf8)) == Array(secret.utf8))
        let files = try ConfigFiles()
        defer { files.remove() }
        #expect(try SecretFile.text(atPath: files.write("secret", contents)) == secret)
    }

    @Test("the fleet-key rule of the protocol is the same rule", arguments: ["k\n", "k", "k\n\n", "k\r\n", ""])
    func fleetKeyAgrees(_ contents: String) {
        #expect(FleetKey(fileContents: Array(contents.utf8)).secret == SecretFile.secret(from: Array(contents.utf8)))
    }

    @Test func missingFileSaysSo() {
        let error = #expect(throws: SecretFileError.self) { try SecretFile.bytes(atPath: "/nonexistent/secret") }
        #expect(error?.code == .noSuchFile && error?.description == "cannot read /nonexistent/secret: no such file")
    }

    @Test func theBrokerPasswordFollowsTheRule() throws {
        let files = try ConfigFiles()
        defer { files.remove() }
        let passwordFile = try files.write("password", "\n s3cret\r\n")
        let yaml = "auth: {key_file: \(files.path("fleet.key"))}\nmqtt: {url: 'mqtt://b:1883', password_file: \(passwordFile)}"
        let config = try GatewayConfig.load(ConfigSource(yamlText: yaml, environment: [:]), named: "test")
        #expect(try MQTTClientOptions(config: config).password == "\n s3cret\r")
    }

    @Test("a fleet key under 16 bytes is a problem that says so", arguments: [
        ("\n", "holds no key (it is empty, or only a newline)"), ("x\n", "holds only 1 byte"),
        ("fifteen-bytes!!\n", "holds only 15 bytes"), ("sixteen-bytes!!!\n", nil),
    ])
    func shortFleetKeysAreProblems(_ contents: String, _ problem: String?) throws {
        let files = try ConfigFiles()
        defer { files.remove() }
        let key = try files.write("short.key", contents)
        let source = ConfigSource(yamlText: "auth: {key_file: \(key)}\nmqtt: {embedded_binary: /bin/sh}", environment: [:])
        _ = GatewayConfig(source: source)
        if let problem {
            #expect(source.problems.count == 1)
            #expect(source.problems.first?.hasPrefix("auth.key_file: \(key) \(problem); a fleet key needs at least 16 bytes (create one: ") == true)
        } else {
            #expect(source.problems.isEmpty)
        }
    }
}
