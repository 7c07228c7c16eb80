// swift-tools-version:6.1
// Benchmarks live in their own package so the main build and CI never pay for them.
import PackageDescription

let package = Package(
    name: "clusterd-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "clusterd", path: ".."),
        .package(url: "https://github.com/ordo-one/malloc-interposer", from: "1.6.0"),
    ],
    targets: [
        .executableTarget(
            name: "LineProtocolBenchmark",
            dependencies: [
                .product(name: "LineProtocol", package: "clusterd"),
                .product(name: "MallocInterposerSwift", package: "malloc-interposer"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
