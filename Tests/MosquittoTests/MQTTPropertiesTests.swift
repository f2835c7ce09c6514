import Mosquitto
import Testing

/// The property set keeps its set properties in a box of its own, copied on write: a copy must stay a value.
@Suite struct MQTTPropertiesTests {
    @Test func aCopyChangedLeavesTheOriginalAsItWas() {
        let original = MQTTProperties(responseTopic: "reply/1", correlationData: [1, 2])
        var copy = original
        copy.responseTopic = "reply/2"
        copy.userProperties.append(MQTTUserProperty(name: "a", value: "b"))
        #expect(original.responseTopic == "reply/1")
        #expect(original.userProperties.isEmpty)
        #expect(copy.responseTopic == "reply/2")
        #expect(copy.correlationData == [1, 2])
        #expect(copy.userProperties == [MQTTUserProperty(name: "a", value: "b")])
        #expect(copy != original)
    }

    @Test func setsWithTheSamePropertiesAreEqualHoweverTheyWereMade() {
        var built = MQTTProperties()
        built.contentType = "image/jpeg"
        built.messageExpiryInterval = 30
        #expect(built == MQTTProperties(messageExpiryInterval: 30, contentType: "image/jpeg"))
        built.messageExpiryInterval = nil
        #expect(built == MQTTProperties(contentType: "image/jpeg"))
        built.contentType = nil
        #expect(built == MQTTProperties())
        #expect(built.isEmpty)
    }

    /// Subscription identifiers come only with incoming messages and are never sent: they leave a set empty to send.
    @Test func subscriptionIdentifiersAloneLeaveNothingToSend() {
        var received = MQTTProperties()
        received.subscriptionIdentifiers = [3]
        #expect(received.isEmpty)
        #expect(received != MQTTProperties())
        #expect(!MQTTProperties(correlationData: []).isEmpty)
    }
}
