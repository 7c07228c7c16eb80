import Foundation
import Synchronization

/// A NATS "micro" service (ADR-32, micro v1): request/reply endpoints queue-subscribed in
/// group `q`, and the `$SRV.PING|INFO|STATS[.name[.id]]` discovery responder whose replies
/// follow the micro v1 schemas, so `nats micro ls|info|stats|ping` work against it.
public final class MicroService: @unchecked Sendable {
    /// An endpoint error: sent back with `Nats-Service-Error` and `Nats-Service-Error-Code`
    /// headers and the JSON body `{"error": description, "code": code}`.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        /// HTTP-like code (400 bad request, 404 not found, 500 internal, 503 unavailable).
        public let code: Int
        public let description: String

        /// A failure.
        public init(_ code: Int, _ description: String) {
            self.code = code
            self.description = description
        }
    }

    /// One endpoint: its name, subject and what it answers.
    public struct Endpoint: Sendable {
        public let name: String
        public let subject: String
        public let metadata: [String: String]?
        public let handler: @Sendable (BusMessage) throws(Failure) -> [UInt8]
        /// Run by every replica of a replicated service (no queue group), answered by the one
        /// that ``MicroService/answers``: for actions that change what each replica keeps.
        public var everyReplica = false
        /// Reads what a request would change as it stands before the handler runs: the audit
        /// log keeps it beside the answer (the state after). nil: the action changes no kept record.
        public var before: StateRead?

        /// An endpoint answering on `subject`.
        public init(name: String, subject: String, metadata: [String: String]? = nil,
                    handler: @escaping @Sendable (BusMessage) throws(Failure) -> [UInt8]) {
            self.name = name
            self.subject = subject
            self.metadata = metadata
            self.handler = handler
        }
    }

    /// A read of the state a request acts on, taken before its handler runs.
    public struct StateRead: Sendable {
        /// Held from the read through the handler, so nothing changes in between (the handler
        /// must take no lock that is taken before this one elsewhere); nil: read, then run.
        public let lock: NSRecursiveLock?
        /// The state as JSON text (`null`: there is none yet, e.g. before a create).
        public let read: @Sendable (BusMessage) -> [UInt8]

        /// A read under `lock`.
        public init(lock: NSRecursiveLock?, read: @escaping @Sendable (BusMessage) -> [UInt8]) {
            self.lock = lock
            self.read = read
        }
    }

    struct Stats: Sendable {
        var requests = 0
        var errors = 0
        var lastError = ""
        var nanoseconds: UInt64 = 0
    }

    /// Service name (`^[A-Za-z0-9_-]+$`), SemVer version, description.
    public let name: String
    public let version: String
    public let description: String
    /// This instance's id (22 characters, like a nuid).
    public let id: String
    public let metadata: [String: String]
    public let endpoints: [Endpoint]
    /// The queue group of every endpoint.
    public static let queueGroup = "q"
    let connection: BusConnection
    let started: String
    private let stats: Mutex<[Stats]>
    private var subscriptions: [BusSubscription] = []
    /// Whether this instance answers the ``Endpoint/everyReplica`` endpoints (nil: not replicated;
    /// they are queue-subscribed like the others).
    let answers: (@Sendable () -> Bool)?

    /// Starts answering: discovery subjects (plain subscriptions, every instance answers) and
    /// the endpoints (queue group `q`, one instance answers each request).
    public init(connection: BusConnection, name: String, version: String, description: String, metadata: [String: String] = [:],
                endpoints: [Endpoint], answers: (@Sendable () -> Bool)? = nil) throws(BusError) {
        self.connection = connection
        self.answers = answers
        self.name = name
        self.version = version
        self.description = description
        self.metadata = metadata
        self.endpoints = endpoints
        let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
        id = String((0..<22).map { _ in alphabet.randomElement()! })
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        started = formatter.string(from: Date())
        stats = Mutex([Stats](repeating: Stats(), count: endpoints.count))
        for verb in ["PING", "INFO", "STATS"] {
            for subject in ["$SRV.\(verb)", "$SRV.\(verb).\(name)", "$SRV.\(verb).\(name).\(id)"] {
                subscriptions.append(try connection.subscribe(subject) { [weak self] m in self?.discover(verb, m) })
            }
        }
        for (i, endpoint) in endpoints.enumerated() {
            let queue = endpoint.everyReplica && answers != nil ? nil : Self.queueGroup
            subscriptions.append(try connection.subscribe(endpoint.subject, queue: queue) { [weak self] m in self?.serve(i, m) })
        }
        try connection.flush()
    }

    /// Stops answering.
    public func stop() {
        for s in subscriptions { s.unsubscribe() }
        subscriptions = []
    }

    private func serve(_ index: Int, _ message: BusMessage) {
        let start = DispatchTime.now().uptimeNanoseconds
        var reply: BusMessage
        var failure: Failure?
        do {
            reply = BusMessage(subject: message.reply ?? "", data: try endpoints[index].handler(message))
        } catch {
            failure = error
            let body = try? JSONSerialization.data(withJSONObject: ["error": error.description, "code": error.code], options: [.sortedKeys])
            reply = BusMessage(subject: message.reply ?? "",
                               headers: ["Nats-Service-Error": [error.description], "Nats-Service-Error-Code": [String(error.code)]],
                               data: Array(body ?? Data()))
        }
        let elapsed = DispatchTime.now().uptimeNanoseconds - start
        stats.withLock { s in
            s[index].requests += 1
            s[index].nanoseconds += elapsed
            if let failure {
                s[index].errors += 1
                s[index].lastError = "\(failure.code):\(failure.description)"
            }
        }
        let answering = !endpoints[index].everyReplica || answers?() ?? true
        if message.reply != nil && answering { try? connection.publish(reply) }
    }

    private func discover(_ verb: String, _ message: BusMessage) {
        guard let replySubject = message.reply else { return }
        var body: [String: Any] = ["name": name, "id": id, "version": version, "metadata": metadata]
        switch verb {
        case "PING":
            body["type"] = "io.nats.micro.v1.ping_response"
        case "INFO":
            body["type"] = "io.nats.micro.v1.info_response"
            body["description"] = description
            body["endpoints"] = endpoints.map { e -> [String: Any] in
                ["name": e.name, "subject": e.subject, "queue_group": Self.queueGroup, "metadata": e.metadata ?? [:]]
            }
        default:
            body["type"] = "io.nats.micro.v1.stats_response"
            body["started"] = started
            let snapshot = stats.withLock { $0 }
            body["endpoints"] = zip(endpoints, snapshot).map { e, s -> [String: Any] in
                ["name": e.name, "subject": e.subject, "queue_group": Self.queueGroup, "num_requests": s.requests,
                 "num_errors": s.errors, "last_error": s.lastError, "processing_time": s.nanoseconds,
                 "average_processing_time": s.requests == 0 ? 0 : s.nanoseconds / UInt64(s.requests)]
            }
        }
        guard let data = try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys]) else { return }
        try? connection.publish(replySubject, Array(data))
    }
}
