// swift-tools-version: 6.0
import PackageDescription

/// Strict settings shared by every Swift target (CONVENTIONS.md, habit 1).
let strictSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "TelemetryFlow",
    products: [
        .library(name: "TelemetryFlowCore", targets: ["TelemetryFlowCore"]),
        .library(name: "TelemetryFlowStorage", targets: ["TelemetryFlowStorage"]),
        .library(name: "TelemetryFlowTransport", targets: ["TelemetryFlowTransport"]),
        .library(name: "TelemetryFlowOTLP", targets: ["TelemetryFlowOTLP"]),
        .library(name: "TelemetryFlow", targets: ["TelemetryFlow"]),
        .library(name: "TelemetryFlowTesting", targets: ["TelemetryFlowTesting"]),
        .executable(name: "tflow", targets: ["tflow"]),
        .executable(name: "tflow-bench", targets: ["EngineBenchmark"]),
        .executable(name: "tflow-export-bench", targets: ["ExportBenchmark"]),
        .executable(name: "tflow-client-bench", targets: ["ClientBenchmark"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.0"),
        .package(url: "https://github.com/swift-otel/swift-w3c-trace-context", from: "1.0.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CLMDB",
            pkgConfig: "lmdb",
            providers: [.apt(["liblmdb-dev"])]
        ),
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev", "libnghttp2-dev"])]
        ),
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .target(name: "CSupport"),
        .target(name: "TelemetryFlowCore", dependencies: ["CSupport"]),
        .target(name: "TelemetryFlowStorage", dependencies: ["TelemetryFlowCore", "CLMDB", "CSupport"]),
        .target(name: "TelemetryFlowTransport", dependencies: ["TelemetryFlowCore", "CCurl", "CZlib", "CSupport"]),
        .target(name: "TelemetryFlowOTLP", dependencies: ["TelemetryFlowCore", "TelemetryFlowTransport"]),
        .target(
            name: "TelemetryFlow",
            dependencies: [
                "CSupport", "TelemetryFlowCore", "TelemetryFlowStorage", "TelemetryFlowTransport", "TelemetryFlowOTLP",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
                .product(name: "W3CTraceContext", package: "swift-w3c-trace-context"),
            ]
        ),
        .target(name: "TelemetryFlowTesting", dependencies: ["TelemetryFlow"]),
        .executableTarget(
            name: "tflow",
            dependencies: [
                "TelemetryFlowCore", "TelemetryFlowStorage", "TelemetryFlow",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "EngineBenchmark",
            dependencies: ["TelemetryFlowCore", "TelemetryFlowStorage"],
            path: "Benchmarks/EngineBenchmark"
        ),
        .executableTarget(name: "ExportBenchmark", dependencies: ["TelemetryFlow"], path: "Benchmarks/ExportBenchmark"),
        .executableTarget(name: "ClientBenchmark", dependencies: ["TelemetryFlow"], path: "Benchmarks/ClientBenchmark"),
        .testTarget(name: "TelemetryFlowCoreTests", dependencies: ["TelemetryFlowCore"]),
        .testTarget(
            name: "TelemetryFlowStorageTests",
            dependencies: ["TelemetryFlowCore", "TelemetryFlowStorage", "CLMDB", "tflow"]
        ),
        .testTarget(
            name: "TelemetryFlowExportTests",
            dependencies: [
                "TelemetryFlow", "TelemetryFlowCore", "TelemetryFlowStorage", "TelemetryFlowTransport", "TelemetryFlowOTLP",
                "TelemetryFlowTesting", "tflow", "CSupport",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ]
)

for target in package.targets where target.type != .system && !target.name.hasPrefix("C") {
    target.swiftSettings = (target.swiftSettings ?? []) + strictSettings
}
