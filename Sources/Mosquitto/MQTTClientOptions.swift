/// TLS settings for a broker connection.
public struct MQTTTLSOptions: Sendable {
    /// PEM file with the CA certificates that sign the broker certificate; `nil` with `caPath` `nil` uses the OS trust store.
    public var caFile: String?
    /// Directory of hashed CA certificates (`c_rehash`).
    public var caPath: String?
    /// Client certificate (PEM) for mutual TLS.
    public var certFile: String?
    /// Private key (PEM, unencrypted) for `certFile`.
    public var keyFile: String?
    /// Skip the check that the broker certificate matches the host name. Only for testing.
    public var insecure: Bool

    /// Creates TLS options; all defaults mean "verify the broker against the OS trust store".
    public init(
        caFile: String? = nil,
        caPath: String? = nil,
        certFile: String? = nil,
        keyFile: String? = nil,
        insecure: Bool = false
    ) {
        self.caFile = caFile
        self.caPath = caPath
        self.certFile = certFile
        self.keyFile = keyFile
        self.insecure = insecure
    }
}

/// How to connect to the broker.
public struct MQTTClientOptions: Sendable {
    /// Broker host name or address. Default `127.0.0.1`.
    public var host: String
    /// Broker port. Default 1883 (8883 for `mqtts://`).
    public var port: Int
    /// MQTT client identifier; empty lets the broker assign one (only with `cleanStart`).
    public var clientID: String
    /// Keepalive interval in seconds. Default 30.
    public var keepalive: Int
    /// User name, if the broker requires one.
    public var username: String?
    /// Password, if the broker requires one.
    public var password: String?
    /// TLS settings; `nil` for plain TCP.
    public var tls: MQTTTLSOptions?
    /// Message the broker publishes if this client vanishes without a clean disconnect.
    public var will: MQTTWill?
    /// Start every connection with a fresh session. Default true. With false the broker keeps the session only
    /// while connected (libmosquitto 2.0.11 cannot send a session expiry with an asynchronous connect).
    public var cleanStart: Bool
    /// Maximum number of unacknowledged QoS 1 publishes on the wire until the broker says otherwise (its CONNACK's
    /// Receive Maximum replaces it in libmosquitto, ``MQTTConnectionEvent/connected(sessionPresent:inflightLimit:)``);
    /// further ones wait in libmosquitto's queue. Default 100.
    public var maxInflight: Int
    /// QoS 0 publishes libmosquitto may hold unwritten (its queue has no limit of its own) before
    /// ``MosquittoClient/hasRoomForAtMostOnce`` says no: a broker slower than the publishers would otherwise grow it
    /// without bound. Default 4,096; at least 2.
    public var maxQueuedAtMostOnce: Int
    /// Bytes of large QoS 0 payloads (2 KiB or more, such as camera frames) libmosquitto may hold unwritten before
    /// ``MosquittoClient/hasRoomForAtMostOnce`` says no: 4,096 frames of megabytes would be gigabytes. A publish made
    /// while there is room is taken whatever its size, so the queue may go beyond by that much. Default 8 MiB; at
    /// least 2.
    public var maxQueuedAtMostOnceBytes: Int
    /// How long to wait between connection attempts (first connect, lost connection, fatal error).
    /// Default: 1 s growing with the square of the attempt up to 30 s, half of each delay random.
    public var reconnect: MQTTReconnectPolicy

    /// Options for the default local broker (`127.0.0.1:1883`).
    public init(clientID: String) {
        self.host = "127.0.0.1"
        self.port = 1883
        self.clientID = clientID
        self.keepalive = 30
        self.username = nil
        self.password = nil
        self.tls = nil
        self.will = nil
        self.cleanStart = true
        self.maxInflight = 100
        self.maxQueuedAtMostOnce = 4_096
        self.maxQueuedAtMostOnceBytes = 8 << 20
        self.reconnect = MQTTReconnectPolicy()
    }

    /// Options from a broker URL: `mqtt://host:port`, `tcp://host:port`, `mqtts://host:port` (TLS with the OS trust
    /// store), optionally with `user:password@` before the host. `host`, `host:port` and `[v6addr]:port` without a
    /// scheme are accepted as plain MQTT.
    ///
    /// - Throws: `MosquittoError` with code `.invalidURL`.
    public init(url: String, clientID: String) throws {
        self.init(clientID: clientID)
        var rest = Substring(url.trimmingSpaces())
        func invalid(_ why: String) -> MosquittoError {
            MosquittoError(
                code: .invalidURL,
                message: "invalid broker URL '\(url)': \(why); expected e.g. mqtt://127.0.0.1:1883 or mqtts://broker.example:8883"
            )
        }
        if let schemeEnd = rest.firstRange(of: "://") {
            let scheme = rest[..<schemeEnd.lowerBound].lowercased()
            rest = rest[schemeEnd.upperBound...]
            switch scheme {
            case "mqtt", "tcp":
                break
            case "mqtts", "ssl", "tls":
                self.port = 8883
                self.tls = MQTTTLSOptions()
            default:
                throw invalid("unsupported scheme '\(scheme)' (use mqtt, mqtts or tcp)")
            }
        }
        if let slash = rest.firstIndex(of: "/") {
            guard rest[slash...].allSatisfy({ $0 == "/" }) else { throw invalid("a path is not supported") }
            rest = rest[..<slash]
        }
        if let at = rest.lastIndex(of: "@") {
            let userInfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = userInfo.firstIndex(of: ":") {
                self.username = try Self.percentDecoded(userInfo[..<colon]) ?? { throw invalid("bad %-escape in user name") }()
                self.password =
                    try Self.percentDecoded(userInfo[userInfo.index(after: colon)...])
                    ?? { throw invalid("bad %-escape in password") }()
            } else {
                self.username = try Self.percentDecoded(userInfo) ?? { throw invalid("bad %-escape in user name") }()
            }
        }
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw invalid("missing ']' after IPv6 address") }
            self.host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw invalid("unexpected text after IPv6 address") }
                portText = after.dropFirst()
            }
        } else if let colon = rest.lastIndex(of: ":") {
            self.host = String(rest[..<colon])
            portText = rest[rest.index(after: colon)...]
        } else {
            self.host = String(rest)
        }
        guard !host.isEmpty else { throw invalid("the host is missing") }
        if let portText {
            guard let port = Int(portText), (1...65535).contains(port) else {
                throw invalid("the port '\(portText)' is not a number between 1 and 65535")
            }
            self.port = port
        }
    }

    /// `host:port`, for messages.
    public var address: String { "\(host):\(port)" }

    private static func percentDecoded(_ text: Substring) -> String? {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                return nil
            }
            bytes.append(high << 4 | low)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

extension String {
    fileprivate func trimmingSpaces() -> Substring {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
            let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })
        else { return "" }
        return Substring(scalars[first...last])
    }
}

extension MQTTClientOptions {
    /// `maxInflight` as libmosquitto takes it (`MOSQ_OPT_SEND_MAXIMUM`, 1...65,535).
    var sendMaximum: Int { min(max(maxInflight, 1), 65_535) }
}
