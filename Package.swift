// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "clusterd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "clusterd", targets: ["clusterd"]),
        .library(name: "LineProtocol", targets: ["LineProtocol"]),
        .library(name: "Bus", targets: ["Bus"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.0"),
    ],
    targets: [
        // Pure line-protocol decoder/encoder: no dependencies, the hot path of every message.
        .target(name: "LineProtocol"),
        // libnats (NATS C client 3.4.1, Debian libnats-dev), imported only by Bus.
        .systemLibrary(name: "CNats", pkgConfig: "libnats", providers: [.apt(["libnats-dev"])]),
        // The one thin wrapper over libnats: connection, subscriptions, JetStream, KV.
        .target(name: "Bus", dependencies: ["CNats"]),
        // Starts a real nats-server per test suite.
        .target(name: "BusTestSupport", path: "Sources/BusTestSupport"),
        .executableTarget(
            name: "clusterd",
            dependencies: [
                "LineProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "LineProtocolTests",
            dependencies: [
                "LineProtocol",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(
            name: "BusTests",
            dependencies: ["Bus", "BusTestSupport"]
        ),
        .testTarget(
            name: "ClusterdCLITests",
            dependencies: ["LineProtocol"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
