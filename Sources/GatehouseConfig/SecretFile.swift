import Foundation

/// The one rule for files holding a secret (`mqtt.password_file`, `auth.key_file`, `auth.key_files.*`, and
/// `gatehousectl --password-file` / `--key-file`): the file's bytes, without one trailing `\n` (the newline
/// editors and `echo` add). Nothing else is trimmed: a `\r`, a space or a second newline is part of the secret.
/// It is the fleet-key rule of PROTOCOL.md section 2 (`FleetKey(fileContents:)`), which devices apply too.
public enum SecretFile {
    /// The secret in `contents`: without one trailing `\n`.
    public static func secret(from contents: [UInt8]) -> [UInt8] {
        contents.last == UInt8(ascii: "\n") ? Array(contents.dropLast()) : contents
    }

    /// The secret in the file at `path`.
    ///
    /// - Throws: `SecretFileError` when the file cannot be read.
    public static func bytes(atPath path: String) throws(SecretFileError) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            let code: SecretFileError.Code = FileManager.default.fileExists(atPath: path) ? .permissionDenied : .noSuchFile
            throw SecretFileError(code: code, path: path)
        }
        return secret(from: [UInt8](data))
    }

    /// The secret in the file at `path`, as UTF-8 text (a password).
    ///
    /// - Throws: `SecretFileError` when the file cannot be read.
    public static func text(atPath path: String) throws(SecretFileError) -> String {
        String(decoding: try bytes(atPath: path), as: UTF8.self)
    }
}

/// A secret file that could not be read.
public struct SecretFileError: Error, CustomStringConvertible {
    /// Why the file could not be read.
    public enum Code: Sendable {
        /// Nothing at that path.
        case noSuchFile
        /// There is something, but it cannot be read (permissions, or a directory).
        case permissionDenied
    }

    /// Why the file could not be read.
    public var code: Code
    /// The file.
    public var path: String

    /// `no such file` or `permission denied`.
    public var reason: String {
        switch code {
        case .noSuchFile: "no such file"
        case .permissionDenied: "permission denied"
        }
    }

    /// `cannot read PATH: REASON`.
    public var description: String { "cannot read \(path): \(reason)" }
}
