// swift-tools-version: 6.2
// The peer benchmark: the same recording calls as `tflow-client-bench`, made through swift-otel (the
// swift-log / swift-metrics / swift-distributed-tracing backends), so that both can be measured in one run
// (`make bench-peers`). A package of its own: swift-otel and SwiftNIO never enter the library's build.
import PackageDescription

let package = Package(
    name: "TelemetryFlowPeers",
    platforms: [.macOS("15.0")],
    dependencies: [
        .package(url: "https://github.com/swift-otel/swift-otel", exact: "1.6.0", traits: ["OTLPHTTP"]),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.0"),
    ],
    targets: [
        .executableTarget(
            name: "SwiftOTelPeer",
            dependencies: [
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        )
    ]
)
