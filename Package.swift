// swift-tools-version: 6.2
import PackageDescription

// librdkafka: the binaries link against Debian's librdkafka-dev and load the newer 2.x runtime
// that scripts/bootstrap.sh places in .local/lib (Debian's 2.0.2 cannot talk to the Tansu broker).
// The rpath is embedded so that built binaries run with no environment variable set by hand.
let rdkafkaRuntimePaths = [
    Context.packageDirectory + "/.local/lib",
    "$ORIGIN/../../../.local/lib",
]
let rdkafkaLinkerSettings: [LinkerSetting] = [
    .unsafeFlags(rdkafkaRuntimePaths.flatMap { ["-Xlinker", "-rpath", "-Xlinker", $0] })
]

let strictSwift: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

let package = Package(
    name: "HealthCode",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "healthcode", targets: ["healthcode"]),
        .library(name: "HealthCodeCore", targets: ["HealthCodeCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.7.1"),
    ],
    targets: [
        // Pure domain core: event contract, person-state fold, policy. No I/O.
        // Build-time embedding of openapi/*.json into the services that serve them.
        .executableTarget(name: "OpenAPIEmbedder", swiftSettings: strictSwift),
        .plugin(name: "EmbedOpenAPI", capability: .buildTool(), dependencies: ["OpenAPIEmbedder"]),
        .target(
            name: "HealthCodeCore",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),
        // librdkafka's C API.
        .systemLibrary(name: "CRdkafka", providers: [.apt(["librdkafka-dev"])]),
        // Thin Kafka adapter over librdkafka.
        .target(
            name: "HealthCodeKafka",
            dependencies: [
                "CRdkafka",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift,
            linkerSettings: rdkafkaLinkerSettings
        ),
        // PostgreSQL adapter: migrations, projection writes, code reads.
        .target(
            name: "HealthCodePostgres",
            dependencies: [
                "HealthCodeCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),
        // HTTP pieces shared by the gateway and the query API.
        .target(
            name: "HealthCodeHTTP",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
            ],
            swiftSettings: strictSwift
        ),
        // Ingestion gateway: authenticate, validate, pseudonymise, produce.
        .target(
            name: "HealthCodeGateway",
            dependencies: [
                "HealthCodeCore",
                "HealthCodeHTTP",
                "HealthCodeKafka",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift,
            plugins: ["EmbedOpenAPI"]
        ),
        // Ingest processor: publishers' inbound Kafka topics → the gateway's rules → the events topic, exactly once.
        .target(
            name: "HealthCodeInbound",
            dependencies: [
                "HealthCodeCore",
                "HealthCodeGateway",
                "HealthCodeHTTP",
                "HealthCodeKafka",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),
        // Projector: Kafka → per-person state and codes in PostgreSQL, exactly once.
        .target(
            name: "HealthCodeProjector",
            dependencies: [
                "HealthCodeCore",
                "HealthCodeHTTP",
                "HealthCodeKafka",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),
        // Query API: codes and explanations read from PostgreSQL.
        .target(
            name: "HealthCodeAPI",
            dependencies: [
                "HealthCodeCore",
                "HealthCodeHTTP",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift,
            plugins: ["EmbedOpenAPI"]
        ),
        // The web console, served by the query API under /console: pages rendered on the server, SVG charts.
        .target(
            name: "HealthCodeConsole",
            dependencies: [
                "HealthCodeCore",
                "HealthCodeHTTP",
                "HealthCodeAPI",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strictSwift
        ),
        // Demo population and the HTTP publisher that loads it through the gateway.
        .target(
            name: "HealthCodeDemo",
            dependencies: [
                "HealthCodeCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),
        // Composition root: builds the services from configuration (executable and integration tests).
        .target(
            name: "HealthCodeBackbone",
            dependencies: [
                "HealthCodeCore",
                "HealthCodeKafka",
                "HealthCodePostgres",
                "HealthCodeGateway",
                "HealthCodeInbound",
                "HealthCodeProjector",
                "HealthCodeAPI",
                "HealthCodeConsole",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),
        // Benchmark harnesses run by `healthcode bench …`.
        // PostgreSQL and a broker of one's own on free loopback ports: benchmarks and tests share it.
        .target(
            name: "HealthCodeLocalServers",
            dependencies: [
                "HealthCodePostgres",
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: strictSwift
        ),
        .target(
            name: "HealthCodeBenchmarks",
            dependencies: [
                "HealthCodeAPI",
                "HealthCodeBackbone",
                "HealthCodeCore",
                "HealthCodeGateway",
                "HealthCodeInbound",
                "HealthCodeKafka",
                "HealthCodeLocalServers",
                "HealthCodePostgres",
                "HealthCodeProjector",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "healthcode",
            dependencies: [
                "HealthCodeCore",
                "HealthCodeKafka",
                "HealthCodePostgres",
                "HealthCodeGateway",
                "HealthCodeInbound",
                "HealthCodeProjector",
                "HealthCodeAPI",
                "HealthCodeBackbone",
                "HealthCodeBenchmarks",
                "HealthCodeConsole",
                "HealthCodeDemo",
                "HealthCodeHTTP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),
        // Shared test fixtures: local infrastructure endpoints, event builders.
        .target(
            name: "HealthCodeTestSupport",
            dependencies: [
                "HealthCodeBackbone",
                "HealthCodeCore",
                "HealthCodeAPI",
                "HealthCodeConsole",
                "HealthCodeGateway",
                "HealthCodeLocalServers",
                "HealthCodePostgres",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/HealthCodeTestSupport",
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "HealthCodeCoreTests",
            dependencies: [
                "HealthCodeCore", "HealthCodeTestSupport", .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "HealthCodeAPITests",
            dependencies: [
                "HealthCodeAPI",
                "HealthCodeCore",
                "HealthCodeHTTP",
                "HealthCodePostgres",
                "HealthCodeTestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "HealthCodeConsoleTests",
            dependencies: [
                "HealthCodeAPI",
                "HealthCodeConsole",
                "HealthCodeCore",
                "HealthCodeTestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "HealthCodeProjectorTests",
            dependencies: ["HealthCodeCore", "HealthCodeProjector", "HealthCodeTestSupport"],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "HealthCodeKafkaTests",
            dependencies: [
                "CRdkafka",
                "HealthCodeKafka",
                "HealthCodeTestSupport",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "HealthCodeInboundTests",
            dependencies: [
                "HealthCodeCore",
                "HealthCodeGateway",
                "HealthCodeInbound",
                "HealthCodeKafka",
                "HealthCodeTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "HealthCodeGatewayTests",
            dependencies: [
                "HealthCodeCore",
                "HealthCodeGateway",
                "HealthCodeKafka",
                "HealthCodeLocalServers",
                "HealthCodeTestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "HealthCodeIntegrationTests",
            dependencies: [
                "HealthCodeCore",
                "HealthCodeKafka",
                "HealthCodePostgres",
                "HealthCodeGateway",
                "HealthCodeInbound",
                "HealthCodeProjector",
                "HealthCodeAPI",
                "HealthCodeBackbone",
                "HealthCodeBenchmarks",
                "HealthCodeLocalServers",
                "HealthCodeTestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),
    ]
)
