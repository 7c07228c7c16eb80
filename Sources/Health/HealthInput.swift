/// A metric value as cc-metric-collector sends it (`<name>,cluster=..,hostname=..,type=..,type-id=.. value=..`).
public struct MetricSample: Sendable, Equatable {
    public var cluster: String
    public var hostname: String
    public var name: String
    /// Every tag of the line except cluster and hostname.
    public var tags: [(key: String, value: String)]
    public var value: Double
    /// Sample time (epoch seconds).
    public var time: Int64

    /// A sample.
    public init(cluster: String, hostname: String, name: String, tags: [(key: String, value: String)] = [], value: Double, time: Int64) {
        self.cluster = cluster
        self.hostname = hostname
        self.name = name
        self.tags = tags
        self.value = value
        self.time = time
    }

    /// The value of tag `key`.
    public func tag(_ key: String) -> String? { tags.first { $0.key == key }?.value }

    public static func == (a: MetricSample, b: MetricSample) -> Bool {
        a.cluster == b.cluster && a.hostname == b.hostname && a.name == b.name && a.value == b.value && a.time == b.time
            && a.tags.elementsEqual(b.tags) { $0.key == $1.key && $0.value == $1.value }
    }
}

/// A node's scheduler state words (normalised Slurm flags).
public struct NodeStatus: Sendable, Equatable {
    public var cluster: String
    public var hostname: String
    public var flags: [String]

    /// A status.
    public init(cluster: String, hostname: String, flags: [String]) {
        self.cluster = cluster
        self.hostname = hostname
        self.flags = flags
    }
}

/// A job that ended: what black-hole detection counts.
public struct JobExit: Sendable, Equatable {
    public var cluster: String
    public var jobId: Int64
    public var user: String
    public var hosts: [String]
    /// Final job state (`failed`, `node_fail`, ...).
    public var state: String
    /// Runtime in seconds, and stop time (epoch seconds).
    public var runtime: Int64
    public var stopTime: Int64

    /// An exit.
    public init(cluster: String, jobId: Int64, user: String, hosts: [String], state: String, runtime: Int64, stopTime: Int64) {
        self.cluster = cluster
        self.jobId = jobId
        self.user = user
        self.hosts = hosts
        self.state = state
        self.runtime = runtime
        self.stopTime = stopTime
    }
}
