import Mosquitto
import Testing

@Suite struct MQTTClientOptionsTests {
    @Test func defaults() {
        let options = MQTTClientOptions(clientID: "gw")
        #expect(options.address == "127.0.0.1:1883")
        #expect(options.keepalive == 30)
        #expect(options.cleanStart)
        #expect(options.maxInflight == 100)
        #expect(options.tls == nil)
    }

    @Test func parsesPlainURL() throws {
        let options = try MQTTClientOptions(url: "mqtt://broker.local:1884", clientID: "gw")
        #expect(options.host == "broker.local")
        #expect(options.port == 1884)
        #expect(options.tls == nil)
        #expect(options.username == nil)
    }

    @Test func parsesTLSURLWithCredentialsAndDefaultPort() throws {
        let options = try MQTTClientOptions(url: "mqtts://gate%40house:p%3Ass@broker.example/", clientID: "gw")
        #expect(options.address == "broker.example:8883")
        #expect(options.tls != nil)
        #expect(options.username == "gate@house")
        #expect(options.password == "p:ss")
    }

    @Test func parsesTCPSchemeBareHostAndIPv6() throws {
        #expect(try MQTTClientOptions(url: "tcp://10.0.0.1", clientID: "x").address == "10.0.0.1:1883")
        #expect(try MQTTClientOptions(url: "localhost:2000", clientID: "x").address == "localhost:2000")
        let v6 = try MQTTClientOptions(url: "mqtt://[::1]:1999", clientID: "x")
        #expect(v6.host == "::1")
        #expect(v6.port == 1999)
    }

    @Test(arguments: ["http://host:1883", "mqtt://:1883", "mqtt://host:99999", "mqtt://host:abc", "mqtt://host/path", ""])
    func rejectsBadURLs(_ url: String) {
        #expect {
            _ = try MQTTClientOptions(url: url, clientID: "x")
        } throws: { error in
            guard let error = error as? MosquittoError else { return false }
            return error.code == .invalidURL && error.message.contains("invalid broker URL")
        }
    }
}
