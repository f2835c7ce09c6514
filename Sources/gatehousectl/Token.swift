import ArgumentParser
import Foundation
import GatehouseConfig
import GatehouseProtocol

/// `gatehousectl token`: device credentials (HS256 JWTs signed with the fleet key). Needs no broker.
struct Token: ParsableCommand {
    /// Name, help and subcommands.
    static let configuration = CommandConfiguration(
        abstract: "Issue and inspect device tokens (needs the fleet key, not the broker).",
        subcommands: [Issue.self, Inspect.self]
    )
}

/// Where the fleet key comes from: `--key-file`, `GATEHOUSE_KEY_FILE`, or `auth.key_files.<kid>` /
/// `auth.key_file` of the gateway config.
struct KeyOptions: ParsableArguments {
    /// The fleet key file.
    @Option(
        help: ArgumentHelp(
            "Fleet key file (default: $GATEHOUSE_KEY_FILE, else auth.key_file of --config).",
            valueName: "file"
        )
    )
    var keyFile: String?

    /// The gateway config, for `auth.key_file`.
    @Option(help: ArgumentHelp("The gateway's YAML config file (default: $GATEHOUSE_CONFIG).", valueName: "file"))
    var config: String?

    /// The key file's path, or nil when none is configured. With a key id, the config must list it in
    /// `auth.key_files`: a token signed with another key under that `kid` would be refused by the gateway.
    func keyPath(id: String?) throws -> String? {
        if let keyFile { return keyFile }
        if let path = Environment.value("GATEHOUSE_KEY_FILE") { return path }
        let file = try GatewayConfigFile.load(option: config)
        // Without a config file there is no fleet key: the gateway's default path is not guessed.
        guard file.isFromFile else { return nil }
        let auth = file.config.auth
        guard let id else { return auth.keyFile }
        guard let path = auth.keyFiles[id] else {
            let known = auth.keyFiles.keys.sorted().joined(separator: ", ")
            throw CtlError.usage("no key with id \(id) in auth.key_files of the config (known: \(known.isEmpty ? "none" : known))")
        }
        return path
    }

    /// Reads the key (the `SecretFile` rule: one trailing newline removed, PROTOCOL.md section 2).
    func load(id: String? = nil) throws -> FleetKey? {
        guard let path = try keyPath(id: id) else { return nil }
        let key = FleetKey(id: id, secret: try SecretFile.bytes(path, what: "key file"))
        if let weakness = FleetKey.weakness(length: key.secret.count) { throw CtlError.usage("key file \(path) \(weakness)") }
        return key
    }
}

extension Token {
    /// `gatehousectl token issue DEVICE`: mints a device token.
    struct Issue: ParsableCommand {
        /// Name and help.
        static let configuration = CommandConfiguration(
            abstract: "Mint a device or viewer token and print it (only the token, for TOKEN=$(gatehousectl token issue ...)).",
            discussion: """
                --json prints {token, device, kind, expires} with expires in Unix seconds (null for never).
                --scope view mints a viewer token for live view (PROTOCOL.md §8): ID names the viewer, --devices the cameras
                it may watch (all when absent); the live URLs of those cameras (WebSocket and MJPEG) go to stderr, or into
                --json as "live". A viewer token cannot connect as a device, and a device token cannot watch.
                """
        )

        /// Where the fleet key comes from.
        @OptionGroup var key: KeyOptions
        /// Output format (`--json`).
        @OptionGroup var output: OutputOptions

        /// The device id (`sub`); the viewer's name for `--scope view`.
        @Argument(help: "Device id (the token's sub claim); for --scope view, the viewer's name.")
        var device: String

        /// `scope`: `device` or `view`.
        @Option(help: "device (default) or view (a live-view viewer token).")
        var scope: String = "device"

        /// `devices`: the cameras a viewer may watch.
        @Option(help: "Viewer tokens: comma-separated device ids the viewer may watch (default: every device).")
        var devices: String?

        /// Base URL for the printed live URLs.
        @Option(help: "Gateway URL for the printed live URLs (default: from gateway.listen of --config, else http://127.0.0.1:8080).")
        var url: String?

        /// The `kind` claim.
        @Option(help: "Device kind claim, e.g. thermostat, camera, sensor.")
        var kind: String?

        /// Lifetime (`exp` = now + this); default 30 days for devices, 1 day for viewers.
        @Option(help: "Lifetime, e.g. 30d, 12h, 1h; 'never' for a token without exp (default 30d; 1d for viewer tokens).")
        var expires: Lifetime?

        /// Key id, written as the header's `kid`.
        @Option(help: "Key id to put in the token header (kid); picks auth.key_files.<kid> of --config unless --key-file is given.")
        var kid: String?

        /// Token id (`jti`), usable for revocation.
        @Option(help: "Token id claim (jti), usable in the revocation list.")
        var jti: String?

        /// Runs the command.
        func run() throws {
            try DeviceArgument.validate(device)
            guard let tokenScope = TokenScope(rawValue: scope) else { throw CtlError.usage("--scope must be device or view, got '\(scope)'") }
            let cameras = devices.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
            if let cameras {
                guard tokenScope == .view else { throw CtlError.usage("--devices is for viewer tokens: add --scope view") }
                for camera in cameras { try DeviceArgument.validate(camera) }
            }
            guard let fleetKey = try key.load(id: kid) else {
                throw CtlError.usage("no fleet key: pass --key-file FILE or --config with auth.key_file")
            }
            let now = Int64(Date().timeIntervalSince1970)
            var expiresAt: Int64?
            let lifetime = expires ?? .after(DurationArgument(milliseconds: (tokenScope == .view ? 1 : 30) * 86_400_000))
            if case .after(let lifetime) = lifetime {
                expiresAt = now + max(1, (lifetime.milliseconds + 999) / 1000)
            }
            let claims = TokenClaims(
                subject: device, kind: kind, expiresAt: expiresAt, issuedAt: now, tokenID: jti, scope: tokenScope, devices: cameras)
            let token = DeviceToken.issue(claims, key: fleetKey)
            let urls = LiveURLs(base: LiveURLs.base(option: url, config: key.config), token: token)
            let watched = cameras ?? ["<device>"]
            if output.json {
                var pairs: [(String, JSONValue)] = [
                    ("token", .string(token)),
                    ("device", .string(device)),
                    ("kind", .string(orNull: kind)),
                    ("expires", .number(orNull: expiresAt)),
                ]
                if tokenScope == .view {
                    pairs.append(("scope", .string("view")))
                    pairs.append(("devices", cameras.map { .array($0.map(JSONValue.string)) } ?? .null))
                    pairs.append(("live", .objectOf(watched.map { ($0, .objectOf([("websocket", .string(urls.webSocket($0))), ("mjpeg", .string(urls.mjpeg($0)))])) })))
                }
                Output.json(.objectOf(pairs))
            } else {
                Output.line(token)
                if tokenScope == .view {
                    // On stderr, so that TOKEN=$(gatehousectl token issue ...) still captures only the token.
                    var text = ""
                    for camera in watched {
                        text += "\(camera):\n  websocket: \(urls.webSocket(camera))\n  mjpeg:     \(urls.mjpeg(camera))\n"
                    }
                    FileHandle.standardError.write(Data(text.utf8))
                }
            }
        }
    }

    /// `gatehousectl token inspect TOKEN`: decodes a token and, given the key, verifies it.
    struct Inspect: ParsableCommand {
        /// Name and help.
        static let configuration = CommandConfiguration(
            abstract: "Decode a token and, with a key, verify it the way the gateway does.",
            discussion: "Exit status 1 when verification fails, 2 when the token cannot be decoded."
        )

        /// Where the fleet key comes from.
        @OptionGroup var key: KeyOptions
        /// Output format (`--json`).
        @OptionGroup var output: OutputOptions

        /// The token.
        @Argument(help: "The token (or '-' to read it from stdin).")
        var token: String

        /// Runs the command.
        func run() throws {
            var text = token
            if text == "-" {
                text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
            }
            text = text.trimmingCharacters(in: .whitespacesAndNewlines)
            let parts = text.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 3, let header = Self.decodePart(parts[0]), let payload = Self.decodePart(parts[1])
            else {
                throw CtlError.usage("not a JWT: expected three base64url parts with JSON header and claims")
            }
            var verdict: (valid: Bool, message: String)?
            if let fleetKey = try key.load(id: header["kid"]?.stringValue) {
                do {
                    _ = try DeviceToken.verify(text, keys: [fleetKey], now: Int64(Date().timeIntervalSince1970))
                    verdict = (true, "valid")
                } catch {
                    verdict = (false, "invalid: \(error.message)")
                }
            }
            if output.json {
                var pairs: [(String, JSONValue)] = [("header", header), ("claims", payload)]
                pairs.append(("valid", verdict.map { .bool($0.valid) } ?? .null))
                if let verdict, !verdict.valid { pairs.append(("error", .string(verdict.message))) }
                Output.json(.objectOf(pairs))
            } else {
                Output.line("header: \(header.serializedString())")
                Output.line("claims: \(payload.serializedString())")
                for claim in ["exp", "nbf", "iat"] {
                    if let seconds = payload[claim]?.numberValue?.int64Value {
                        Output.line("\(claim):    \(TimeText.iso8601(ms: seconds * 1000))")
                    }
                }
                Output.line("signature: \(verdict?.message ?? "not checked (no key file)")")
            }
            if let verdict, !verdict.valid { throw ExitCode(CtlError.Code.failed.rawValue) }
        }

        /// Decodes one base64url part holding JSON.
        private static func decodePart(_ part: Substring) -> JSONValue? {
            guard let bytes = Base64URL.decode(part) else { return nil }
            return try? JSONValue(parsing: bytes)
        }
    }
}

/// A token lifetime: a duration, or `never` for no `exp` claim.
enum Lifetime: ExpressibleByArgument, Sendable {
    /// Expires this long after issuing.
    case after(DurationArgument)
    /// No `exp` claim.
    case never

    /// Parses `never` or a duration.
    init?(argument: String) {
        if argument.lowercased() == "never" {
            self = .never
        } else if let duration = DurationArgument(argument: argument), duration.milliseconds > 0 {
            self = .after(duration)
        } else {
            return nil
        }
    }

    /// Shown in `--help`.
    var defaultValueDescription: String {
        switch self {
        case .after(let duration): duration.description
        case .never: "never"
        }
    }
}
