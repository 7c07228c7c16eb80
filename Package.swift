// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "clusterd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "clusterd", targets: ["clusterd"]),
        .library(name: "LineProtocol", targets: ["LineProtocol"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.0"),
    ],
    targets: [
        // Pure line-protocol decoder/encoder: no dependencies, the hot path of every message.
        .target(name: "LineProtocol"),
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
            name: "ClusterdCLITests",
            dependencies: ["LineProtocol"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
