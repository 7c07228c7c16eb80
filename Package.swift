// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "clusterd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "clusterd", targets: ["clusterd"]),
        .library(name: "LineProtocol", targets: ["LineProtocol"]),
        .library(name: "Bus", targets: ["Bus"]),
        .library(name: "Store", targets: ["Store"]),
        .library(name: "Jobs", targets: ["Jobs"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.0.0"),
    ],
    targets: [
        // Pure line-protocol decoder/encoder: no dependencies, the hot path of every message.
        .target(name: "LineProtocol", dependencies: ["CLineScan"]),
        // 16-byte token scanning (SSE2 with a portable fallback), inlined into LineProtocol.
        .target(name: "CLineScan"),
        // libnats (NATS C client 3.4.1, Debian libnats-dev), imported only by Bus.
        .systemLibrary(name: "CNats", pkgConfig: "libnats", providers: [.apt(["libnats-dev"])]),
        // The one thin wrapper over libnats: connection, subscriptions, JetStream, KV.
        .target(name: "Bus", dependencies: ["CNats"]),
        // SQLite (Debian libsqlite3-dev), imported only by Store.
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        // zlib (Debian zlib1g-dev), imported only by Gzip.
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // gzip for archive files.
        .target(name: "Gzip", dependencies: ["CZlib"]),
        // SQLite wrapper: connections, prepared statements, migrations, the outbox.
        .target(name: "Store", dependencies: ["CSQLite", "Threads"]),
        // Shared value types: JSON with Go-compatible decoding rules.
        .target(name: "Model", dependencies: ["LineProtocol"]),
        // The job stage: start/stop events, validation, job tables, the archive.
        .target(name: "Jobs", dependencies: ["LineProtocol", "Model", "Store"]),
        // The job-archive tree (v3): entries written and synced, export and import.
        .target(name: "Archive", dependencies: ["Jobs", "Model", "Store"]),
        // The node-state stage: nodestate events, Slurm state reduction, current state and history.
        .target(name: "Nodes", dependencies: ["LineProtocol", "Model", "Store"]),
        // Health evaluation: topology, checks library, the evaluation engine (pure).
        .target(name: "Health", dependencies: ["Model", .product(name: "Yams", package: "Yams")]),
        // Metric buffers: rings per series, checkpoints, a job's data.json and statistics.
        .target(name: "MetricBuffers", dependencies: ["Model"]),
        // Alerts: persisted alert state, sequenced publication through the outbox, maintenance windows.
        .target(name: "Alerts", dependencies: ["Health", "Model", "Store"]),
        // Fleet records: managed servers, heartbeats, pull health checks, summary.
        .target(name: "Fleet", dependencies: ["Model", "Store"]),
        // Slurm's own reports (squeue/sinfo --json) read into jobs and nodes, and the
        // ClusterCockpit events built from them (pure: the commands run in the executable).
        .target(name: "Slurm", dependencies: ["Model"]),
        // Typed configuration: clusterd.yaml's sections, defaults, validation, unknown keys by line.
        .target(name: "Config", dependencies: ["Bus", .product(name: "Yams", package: "Yams")]),
        // /metrics, /healthz, /readyz and the counters behind them.
        .target(name: "Observability", dependencies: ["Config", "Threads", .product(name: "Prometheus", package: "swift-prometheus")]),
        // Dedicated threads for loops that block, stopped by cancellation of their loop.
        .target(name: "Threads"),
        // Delivery: JetStream batches and core subscriptions, ack after commit, the
        // poison-pill breaker, dead letters, the outbox publisher, the metric stream.
        .target(name: "Intake", dependencies: [
            "Threads", "Bus", "Store", "Model", "LineProtocol", "CLineScan", "Health", "MetricBuffers", "Config", "Observability",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The stages' processors: job and node batches on the writer, archive settlement,
        // KV mirrors, the health loop that turns evaluations into alerts.
        .target(name: "Processing", dependencies: [
            "Threads", "Intake", "Jobs", "Archive", "Nodes", "Health", "Alerts", "MetricBuffers", "Gzip", "Store", "Model", "LineProtocol", "Config", "Observability",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Request/reply: clusterd.api.* (read-only connection), clusterd.admin.* (on the writer).
        .target(name: "API", dependencies: [
            "Bus", "Store", "Jobs", "Health", "Alerts", "Model", "Intake", "Processing", "Config", "Audit",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The world outside NATS: HTTP probes, the fleet service (pull checks, heartbeats,
        // operations, its API), Alertmanager forwarding, the broker probe.
        .target(name: "Integrations", dependencies: [
            "Threads", "Bus", "Store", "Fleet", "Alerts", "Health", "Model", "LineProtocol", "Intake", "Config", "Observability",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The audit log: every administrative action, who asked, the request and the answer.
        .target(name: "Audit", dependencies: ["Store", "Model"]),
        // Replicas on a NATS cluster: the publisher lease in a key-value bucket.
        .target(name: "Replication", dependencies: [
            "Threads", "Bus", "Observability",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The composition root: builds every part from the configuration and runs them.
        .target(name: "Pipeline", dependencies: [
            "Threads", "Bus", "Store", "Jobs", "Archive", "Nodes", "Health", "Alerts", "MetricBuffers", "Fleet", "Model", "NATSServerProcess",
            "Config", "Observability", "Intake", "Processing", "API", "Integrations", "Replication", "Audit",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        // A nats-server child process: the embedded default of `clusterd run`, and tests.
        .target(name: "NATSServerProcess"),
        // Starts a real nats-server per test suite.
        .target(name: "BusTestSupport", dependencies: ["NATSServerProcess", "Bus"]),
        .executableTarget(
            name: "clusterd-fuzz",
            dependencies: ["LineProtocol", "Jobs", "Nodes"]
        ),
        .executableTarget(
            name: "clusterd",
            dependencies: [
                "LineProtocol", "Pipeline", "Config", "Observability", "Intake", "Processing", "API", "Integrations",
                "Bus", "Store", "NATSServerProcess", "Health", "MetricBuffers", "Model", "Jobs", "Archive", "Slurm",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "LineProtocolTests",
            dependencies: [
                "LineProtocol", "BusTestSupport",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(
            name: "HealthTests",
            dependencies: ["Health", "MetricBuffers", "Model"]
        ),
        .testTarget(name: "StoreTests", dependencies: ["Store"]),
        .testTarget(name: "ThreadsTests", dependencies: ["Threads"]),
        .testTarget(name: "ModelTests", dependencies: ["Model"]),
        .testTarget(name: "FleetTests", dependencies: ["Fleet", "Model", "Store"]),
        .testTarget(name: "JobsTests", dependencies: ["Jobs", "Model"]),
        .testTarget(name: "ConfigTests", dependencies: ["Config"]),
        .testTarget(name: "SlurmTests", dependencies: ["Slurm", "Model"]),
        .testTarget(
            name: "BusTests",
            dependencies: ["Bus", "BusTestSupport"]
        ),
        .testTarget(
            name: "PipelineTests",
            dependencies: ["Pipeline", "Config", "Observability", "Intake", "Processing", "API", "Integrations",
                           "Jobs", "Archive", "Nodes", "Health", "Alerts", "MetricBuffers", "Fleet", "Store", "Model", "Bus", "BusTestSupport",
                           .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "ClusterdCLITests",
            dependencies: ["LineProtocol", "Bus", "BusTestSupport", "Store", "Model", "Archive", "Processing"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
