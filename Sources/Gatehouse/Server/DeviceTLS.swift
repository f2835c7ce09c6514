import GatehouseProtocol
import NIOSSL
import SwiftASN1
import Synchronization
import X509

/// The listener's TLS (`wss://`): the server context, rebuilt from its files on SIGHUP (connections already
/// open keep the one they started with), and the device id a client certificate proves.
final class DeviceTLS: Sendable {
    private let files: GatewaySection.TLSFiles
    private let context: Mutex<NIOSSLContext>

    /// - Throws: `StartupError` naming the file that cannot be used.
    init(files: GatewaySection.TLSFiles) throws {
        self.files = files
        self.context = Mutex(try Self.makeContext(files))
    }

    /// The context for a new connection.
    var current: NIOSSLContext { context.withLock { $0 } }

    /// Re-reads the certificate, key and client CA; on failure the old context stays in use.
    func reload() throws {
        let fresh = try Self.makeContext(files)
        context.withLock { $0 = fresh }
    }

    private static func makeContext(_ files: GatewaySection.TLSFiles) throws -> NIOSSLContext {
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        do {
            chain = try NIOSSLCertificate.fromPEMFile(files.certFile)
        } catch {
            throw StartupError("gateway.tls.cert_file: cannot load \(files.certFile): \(error)")
        }
        do {
            key = try NIOSSLPrivateKey(file: files.keyFile, format: .pem)
        } catch {
            throw StartupError("gateway.tls.key_file: cannot load \(files.keyFile): \(error)")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        if let clientCA = files.clientCAFile {
            configuration.trustRoots = .file(clientCA)
            // A device may present a certificate (checked against the CA) or a token instead.
            configuration.certificateVerification = .optionalVerification
        }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw StartupError("gateway.tls: the certificate, key or client CA cannot be used together: \(error)")
        }
    }

    /// The device a verified client certificate names: the first of its DNS or URI SANs, then its CN,
    /// that is a valid device id.
    static func deviceID(of certificate: NIOSSLCertificate) -> String? {
        guard let der = try? certificate.toDERBytes(), let parsed = try? Certificate(derEncoded: der) else { return nil }
        var names: [String] = []
        if let alternatives = try? parsed.extensions.subjectAlternativeNames {
            for name in alternatives {
                switch name {
                case .dnsName(let text), .uniformResourceIdentifier(let text): names.append(text)
                default: break
                }
            }
        }
        for relative in parsed.subject {
            for attribute in relative where attribute.type == .RDNAttributeType.commonName {
                if let text = String(attribute.value) { names.append(text) }
            }
        }
        return names.first(where: Identifiers.isValidDeviceID)
    }
}
