import GatehouseProtocol

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Mints device tokens from the fleet key file, for simulators, tests and provisioning scripts.
public enum DeviceCredentials {
    /// Reads the fleet key file and issues an HS256 token for `device`.
    ///
    /// - Parameters:
    ///   - device: The device id (the `sub` claim).
    ///   - kind: The `kind` claim, e.g. `thermostat`; nil leaves it out.
    ///   - keyFile: Path of the fleet key file (`auth.key_file` of the gateway); one trailing newline is ignored.
    ///   - expiresIn: Lifetime of the token; nil issues a token without `exp`.
    /// - Throws: ``CredentialsError`` when the file cannot be read or the device id is invalid.
    public static func mint(device: String, kind: String? = nil, keyFile: String, expiresIn: Duration? = nil) throws -> String {
        let key = try self.fleetKey(keyFile: keyFile)
        return try self.mint(device: device, kind: kind, key: key, expiresIn: expiresIn)
    }

    /// Issues an HS256 token for `device` with an already loaded key (minting many tokens reads the file once).
    public static func mint(device: String, kind: String? = nil, key: FleetKey, expiresIn: Duration? = nil) throws -> String {
        guard Identifiers.isValidDeviceID(device) else {
            throw CredentialsError(code: .invalidDeviceID, message: "'\(device)' is not a valid device id: use 1–64 of A-Z a-z 0-9 . _ - starting with a letter or digit, not 'bridge'")
        }
        let now = Int64(Date().timeIntervalSince1970)
        let claims = TokenClaims(
            subject: device,
            kind: kind,
            expiresAt: expiresIn.map { now + $0.components.seconds },
            issuedAt: now
        )
        return DeviceToken.issue(claims, key: key)
    }

    /// Loads the fleet key file.
    public static func fleetKey(keyFile: String) throws -> FleetKey {
        do {
            let contents = try Data(contentsOf: URL(fileURLWithPath: keyFile))
            guard !contents.isEmpty else {
                throw CredentialsError(code: .unreadableKeyFile, message: "the fleet key file \(keyFile) is empty; put the gateway's auth.key_file there")
            }
            return FleetKey(fileContents: [UInt8](contents))
        } catch let error as CredentialsError {
            throw error
        } catch {
            throw CredentialsError(
                code: .unreadableKeyFile,
                message: "cannot read the fleet key file \(keyFile): check that it exists and is readable (it is the gateway's auth.key_file)"
            )
        }
    }
}

/// The fleet key could not be used to mint a token; switch on ``code``.
public struct CredentialsError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public enum Code: Sendable, Equatable {
        /// The key file is missing, unreadable or empty.
        case unreadableKeyFile
        /// The device id does not match the device id rules.
        case invalidDeviceID
    }

    /// What went wrong.
    public var code: Code
    /// What went wrong and what to do about it.
    public var message: String

    /// Creates an error.
    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    /// The message.
    public var description: String { self.message }
}
