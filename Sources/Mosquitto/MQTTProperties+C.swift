import CMosquitto

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension MQTTProperties {
    /// Builds a libmosquitto property list, hands it to `body` and frees it afterwards
    /// (libmosquitto copies what it keeps). `nil` when there is nothing to send.
    func withCProperties<R>(_ body: (OpaquePointer?) -> R) -> R {
        guard !isEmpty else { return body(nil) }
        var list: OpaquePointer?
        defer { mosquitto_property_free_all(&list) }
        if let responseTopic {
            mosquitto_property_add_string(&list, MQTTPropertyID.responseTopic, responseTopic)
        }
        if let correlationData {
            correlationData.withUnsafeBytes { bytes in
                _ = mosquitto_property_add_binary(
                    &list,
                    MQTTPropertyID.correlationData,
                    bytes.baseAddress,
                    UInt16(clamping: bytes.count)
                )
            }
        }
        if let messageExpiryInterval {
            mosquitto_property_add_int32(&list, MQTTPropertyID.messageExpiryInterval, messageExpiryInterval)
        }
        if let contentType {
            mosquitto_property_add_string(&list, MQTTPropertyID.contentType, contentType)
        }
        for property in userProperties {
            mosquitto_property_add_string_pair(&list, MQTTPropertyID.userProperty, property.name, property.value)
        }
        return body(list)
    }

    /// Copies the properties we model out of a libmosquitto list (which is only valid during the callback).
    init(copying list: OpaquePointer?) {
        self.init()
        var node = list
        while let current = node {
            switch mosquitto_property_identifier(current) {
            case MQTTPropertyID.responseTopic:
                var value: UnsafeMutablePointer<CChar>?
                if mosquitto_property_read_string(current, MQTTPropertyID.responseTopic, &value, false) != nil,
                    let value
                {
                    responseTopic = String(cString: value)
                    free(value)
                }
            case MQTTPropertyID.correlationData:
                var value: UnsafeMutableRawPointer?
                var length: UInt16 = 0
                if mosquitto_property_read_binary(current, MQTTPropertyID.correlationData, &value, &length, false)
                    != nil
                {
                    correlationData = value.map { [UInt8](UnsafeRawBufferPointer(start: $0, count: Int(length))) } ?? []
                    free(value)
                }
            case MQTTPropertyID.messageExpiryInterval:
                var value: UInt32 = 0
                if mosquitto_property_read_int32(current, MQTTPropertyID.messageExpiryInterval, &value, false) != nil {
                    messageExpiryInterval = value
                }
            case MQTTPropertyID.contentType:
                var value: UnsafeMutablePointer<CChar>?
                if mosquitto_property_read_string(current, MQTTPropertyID.contentType, &value, false) != nil,
                    let value
                {
                    contentType = String(cString: value)
                    free(value)
                }
            case MQTTPropertyID.userProperty:
                var name: UnsafeMutablePointer<CChar>?
                var value: UnsafeMutablePointer<CChar>?
                if mosquitto_property_read_string_pair(current, MQTTPropertyID.userProperty, &name, &value, false)
                    != nil
                {
                    userProperties.append(
                        MQTTUserProperty(
                            name: name.map { String(cString: $0) } ?? "",
                            value: value.map { String(cString: $0) } ?? ""
                        )
                    )
                    free(name)
                    free(value)
                }
            case MQTTPropertyID.subscriptionIdentifier:
                var value: UInt32 = 0
                if mosquitto_property_read_varint(current, MQTTPropertyID.subscriptionIdentifier, &value, false) != nil {
                    subscriptionIdentifiers.append(value)
                }
            default:
                break
            }
            node = mosquitto_property_next(current)
        }
    }
}

/// MQTT 5 property identifiers as the `Int32` libmosquitto's functions take (the C enum imports as `UInt32`).
enum MQTTPropertyID {
    static let responseTopic = Int32(MQTT_PROP_RESPONSE_TOPIC.rawValue)
    static let correlationData = Int32(MQTT_PROP_CORRELATION_DATA.rawValue)
    static let messageExpiryInterval = Int32(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL.rawValue)
    static let contentType = Int32(MQTT_PROP_CONTENT_TYPE.rawValue)
    static let userProperty = Int32(MQTT_PROP_USER_PROPERTY.rawValue)
    static let subscriptionIdentifier = Int32(MQTT_PROP_SUBSCRIPTION_IDENTIFIER.rawValue)
    static let receiveMaximum = Int32(MQTT_PROP_RECEIVE_MAXIMUM.rawValue)

    /// The Receive Maximum in a CONNACK's `properties`, nil when it has none.
    static func receiveMaximum(in properties: OpaquePointer?) -> Int? {
        var value: UInt16 = 0
        guard mosquitto_property_read_int16(properties, receiveMaximum, &value, false) != nil, value > 0 else { return nil }
        return Int(value)
    }
}
