// swift-tools-version:6.1
import PackageDescription

/// Settings shared by every target: Swift 6 language mode plus the upcoming features the
/// Hummingbird codebases use, so imports and existentials stay explicit.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

/// The gateway's own targets also skip the run-time exclusivity checks in release builds (debug builds and the tests
/// keep them, and the compiler's static checks stay): the `swift_beginAccess` around each access to a class's stored
/// `var` was 1.6 % of the telemetry path's samples (docs/benchmarks.md, "Optimisations"). Not for the targets of the
/// `GatehouseDevice` library: SwiftPM refuses a dependency's product whose targets have unsafe flags.
let gatewaySwiftSettings = swiftSettings + [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "gatehouse",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "gatehouse", targets: ["gatehouse"]),
        .executable(name: "gatehousectl", targets: ["gatehousectl"]),
        .executable(name: "gatehouse-sim", targets: ["gatehouse-sim"]),
        .library(name: "GatehouseDevice", targets: ["GatehouseDevice"]),
    ],
    dependencies: [
        // HTTP server, WebSocket client and permessage-deflate (server side is our own channel on NIOWebSocket).
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        // The embedded mosquitto as a child process: spawn with reset signal dispositions (swift-service-lifecycle
        // ignores SIGTERM/SIGINT/SIGHUP in the gateway), its own process group, streamed output lines, an
        // awaitable exit and a SIGTERM-then-SIGKILL teardown, instead of our own posix_spawn and waitpid polling.
        .package(url: "https://github.com/swiftlang/swift-subprocess.git", from: "1.0.2"),
        // `FilePath`, which Subprocess takes for an executable's path (it is its dependency on Linux).
        .package(url: "https://github.com/apple/swift-system.git", from: "1.5.0"),
        // `AsyncTimerSequence` for the periodic services (already in the graph through Hummingbird and
        // ServiceLifecycle; named here because we import it directly).
        .package(url: "https://github.com/apple/swift-async-algorithms.git", from: "1.1.4"),
        // permessage-deflate (RFC 7692) inflation, the zlib binding swift-websocket uses too.
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
        // TLS for devices (wss://, client certificates), and reading a client certificate's CN and SAN.
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        // HMAC-SHA256 for device tokens.
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        // YAML config files.
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CMosquitto",
            pkgConfig: "libmosquitto",
            providers: [.apt(["libmosquitto-dev"])]
        ),
        .systemLibrary(
            // libjpeg-turbo, for the simulator's live camera frames only (the gateway never decodes or encodes images).
            name: "CJPEG",
            pkgConfig: "libjpeg",
            providers: [.apt(["libjpeg62-turbo-dev"])]
        ),
        .target(
            // read, write and close for the whole process, buffered only for libmosquitto's socket on the MQTT
            // network thread (Sources/Mosquitto/NetworkLoop.swift says why; hand-written: no package does this).
            name: "CSocketBuffers"
        ),
        .target(
            // A number for each thread, read from C's thread-local storage (Swift has none), for the striped
            // per-message counters. Hand-written: a dozen lines, no package does it.
            name: "CThreadNumber"
        ),
        .target(
            name: "Mosquitto",
            dependencies: [
                "CMosquitto",
                "CSocketBuffers",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: gatewaySwiftSettings
        ),
        .target(
            name: "GatehouseProtocol",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            // The config file's model and reader, shared by the gateway and gatehousectl.
            name: "GatehouseConfig",
            dependencies: [
                "GatehouseProtocol",
                "Mosquitto",
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "GatehouseDevice",
            dependencies: [
                "GatehouseProtocol",
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "HummingbirdWSCompression", package: "hummingbird-websocket"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Gatehouse",
            dependencies: [
                "GatehouseConfig",
                "GatehouseProtocol",
                "Mosquitto",
                "CThreadNumber",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                // SHA-1 for the WebSocket handshake's accept key (DeviceUpgradeFastPath).
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                // `ServerQuiescingHelper`, for the listener's graceful shutdown (GatewayListener), as Hummingbird's server uses it.
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
            ],
            swiftSettings: gatewaySwiftSettings
        ),
        .executableTarget(
            name: "gatehouse",
            dependencies: [
                "Gatehouse",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "gatehousectl",
            dependencies: [
                "GatehouseConfig",
                "GatehouseProtocol",
                "Mosquitto",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "gatehouse-sim",
            dependencies: [
                "GatehouseDevice",
                "CJPEG",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "examples/gatehouse-sim",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MosquittoTests",
            dependencies: ["Mosquitto"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GatehouseTests",
            dependencies: ["Gatehouse", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GatehouseConfigTests",
            dependencies: ["GatehouseConfig", "GatehouseProtocol", "Mosquitto"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GatehouseProtocolTests",
            dependencies: ["GatehouseProtocol"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GatehouseDeviceTests",
            dependencies: [
                "GatehouseDevice", "GatehouseProtocol",
                // A small WebSocket server stands in for the gateway in the client's live tests.
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)

// libFuzzer targets (`make fuzz`): only with GATEHOUSE_FUZZ set, because they link only when built with
// `--sanitize=fuzzer` (libFuzzer provides `main`).
if Context.environment["GATEHOUSE_FUZZ"] != nil {
    package.targets.append(
        .executableTarget(
            name: "FuzzDeviceMessages",
            dependencies: ["GatehouseProtocol"],
            path: "Fuzz/FuzzDeviceMessages"
        )
    )
}
