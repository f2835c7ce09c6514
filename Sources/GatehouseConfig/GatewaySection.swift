import Foundation
import GatehouseProtocol

/// `gateway`: `id` (string, default `gw-1`), `listen` (`host:port`, default `0.0.0.0:8080`),
/// `heartbeat_s` (int, 30), `health_interval_s` (int, 10), `shutdown_grace_s` (int, 10),
/// `compression` (bool, true: negotiate permessage-deflate when a device offers it),
/// `tls.cert_file`, `tls.key_file`, `tls.client_ca_file` (paths, none: see `TLSFiles`).
public struct GatewaySection: Sendable {
    public var id: String
    public var host: String
    public var port: Int
    public var heartbeatSeconds: Int
    public var healthIntervalSeconds: Int
    public var shutdownGraceSeconds: Int
    public var compression: Bool
    /// `gateway.tls`: devices connect with `wss://` when set.
    public var tls: TLSFiles?

    /// `gateway.tls.cert_file` and `key_file` (PEM; the chain may follow the certificate), and the optional
    /// `client_ca_file`: client certificates it signed, whose CN or a SAN is a device id, replace a token.
    public struct TLSFiles: Sendable {
        public var certFile: String
        public var keyFile: String
        public var clientCAFile: String?
    }

    /// Reads `gateway.*` from `source`, recording problems there.
    public init(_ source: ConfigSource) {
        id = source.string("gateway.id", default: "gw-1")
        if !Identifiers.isValidGatewayID(id) {
            source.problem("gateway.id", "\"\(id)\" is not a valid gateway id (letters, digits, . _ -; at most 64)")
        }
        let defaultListen = "0.0.0.0:8080"
        let listen = source.string("gateway.listen", default: defaultListen)
        if let (host, port) = Self.hostAndPort(listen) {
            (self.host, self.port) = (host, port)
        } else {
            source.problem("gateway.listen", "must be host:port, got \"\(listen)\"")
            (host, port) = Self.hostAndPort(defaultListen)!
        }
        heartbeatSeconds = source.int("gateway.heartbeat_s", default: 30, in: 1...3600)
        healthIntervalSeconds = source.int("gateway.health_interval_s", default: 10, in: 1...3600)
        shutdownGraceSeconds = source.int("gateway.shutdown_grace_s", default: 10, in: 0...600)
        compression = source.bool("gateway.compression", default: true)
        let certFile = source.string("gateway.tls.cert_file")
        let keyFile = source.string("gateway.tls.key_file")
        let clientCAFile = source.string("gateway.tls.client_ca_file")
        source.checkReadable("gateway.tls.cert_file", certFile)
        source.checkReadable("gateway.tls.key_file", keyFile)
        source.checkReadable("gateway.tls.client_ca_file", clientCAFile)
        if let certFile, let keyFile {
            tls = TLSFiles(certFile: certFile, keyFile: keyFile, clientCAFile: clientCAFile)
        } else if certFile != nil || keyFile != nil || clientCAFile != nil {
            source.problem("gateway.tls.cert_file", "TLS needs both gateway.tls.cert_file and gateway.tls.key_file")
        }
    }

    /// `host:port` (IPv6 as `[::]:8080`), or nil.
    static func hostAndPort(_ listen: String) -> (String, Int)? {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port)
        else { return nil }
        return (String(listen[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port)
    }
}
