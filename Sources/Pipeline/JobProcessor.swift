import Jobs
import LineProtocol
import Logging
import Model
import Store

/// What became of one message after its batch committed.
public enum MessageDisposition: Sendable, Equatable {
    /// Applied; `rejected` lines were dead-lettered, `accepted` lines took effect (or were
    /// redeliveries without effect).
    case applied(accepted: Int, rejected: Int)
    /// This delivery was committed before (crash between commit and ack): only ack it.
    case alreadyApplied

    /// True when nothing in the message could ever succeed: terminate instead of ack.
    public var isDeadLetterOnly: Bool {
        if case .applied(let accepted, let rejected) = self { return accepted == 0 && rejected > 0 }
        return false
    }
}

/// Applies batches of job-event messages in one SQLite transaction: decode every line,
/// apply each event in its own savepoint, dead-letter what is refused, and queue results and
/// dead letters in the outbox — all committed together.
public final class JobProcessor: @unchecked Sendable {
    /// The writer connection (used by one thread at a time).
    public let database: Database
    /// The job stage.
    public let stage: JobStage
    let archive: ArchiveWriter
    let outbox: Outbox
    let config: ClusterdConfig
    let counters: PipelineCounters
    let logger: Logger
    private let decoder = LineDecoder(precision: .nanoseconds)

    /// A processor over an open, migrated database.
    public init(database: Database, clusters: ClusterRegistry, archive: ArchiveWriter, config: ClusterdConfig,
                counters: PipelineCounters, logger: Logger) {
        self.database = database
        stage = JobStage(database: database, clusters: clusters)
        self.archive = archive
        outbox = Outbox(database)
        self.config = config
        self.counters = counters
        self.logger = logger
    }

    /// All migrations of the tables this processor uses.
    public static let migrations = Outbox.migrations + PipelineSchema.migrations + JobSchema.migrations

    /// Applies `messages` in one transaction. Throws only when the whole batch must be
    /// retried later (a transient database error); then nothing of it was committed.
    public func process(_ messages: [IncomingMessage]) throws -> [MessageDisposition] {
        try database.transaction {
            try messages.map { try self.processOne($0) }
        }
    }

    private func processOne(_ message: IncomingMessage) throws -> MessageDisposition {
        let seen = try database.prepare("SELECT 1 FROM applied_message WHERE origin = ?").first([.text(message.origin)]) { _ in true } ?? false
        if seen { return .alreadyApplied }
        var accepted = 0
        var rejected = 0
        var results: [JSONValue] = []
        var firstError: String?
        try decoder.forEachLine(in: message.data) { entry in
            let line: Int
            let raw: String
            let outcome: Result<(JobEvent, JobOutcome), Located<JobRejection>>
            switch entry {
            case .error(let error, let rawBytes):
                line = error.line
                raw = String(decoding: rawBytes, as: UTF8.self)
                outcome = .failure(Located(column: error.column, .syntax(error.reason.description)))
            case .point(let view):
                line = view.line
                raw = String(decoding: view.raw, as: UTF8.self)
                switch JobEvent.decode(view) {
                case .failure(let located): outcome = .failure(located)
                case .success(let (event, column)):
                    do {
                        let result = try database.savepoint { try stage.apply(event, now: message.receivedAt, origin: message.origin, raw: raw) }
                        outcome = .success((event, result))
                    } catch let rejection as JobRejection {
                        outcome = .failure(Located(column: column, rejection))
                    } catch let error as StoreError where !error.isTransient {
                        // A constraint the stage did not foresee: this event can never succeed.
                        outcome = .failure(Located(column: column, .invalidValue("rejected by the database: \(error.message)")))
                    }
                }
            }
            var entryJSON = JSONObjectBuilder()
            entryJSON.add("line", line)
            switch outcome {
            case .success(let (event, result)):
                accepted += 1
                counters.add("jobs.events.\(result.status)")
                entryJSON.add("function", event.function)
                entryJSON.add("jobId", event.jobId)
                entryJSON.add("status", result.status)
                logger.debug("job event applied", metadata: ["origin": "\(message.origin)", "line": "\(line)", "job": "\(event.jobId)", "status": "\(result.status)"])
            case .failure(let located):
                rejected += 1
                let letter = DeadLetter(stage: "jobs", subject: message.subject, messageID: message.messageID, origin: message.origin,
                                        line: line, column: located.column, code: located.value.code, reason: located.value.description,
                                        raw: raw, receivedAt: message.receivedAt)
                try deadLetter(letter)
                firstError = firstError ?? letter.summary
                entryJSON.add("status", "rejected")
                entryJSON.add("code", letter.code)
                entryJSON.add("error", letter.summary)
            }
            results.append(entryJSON.value)
        }
        if accepted == 0 && rejected == 0 {
            // An empty message is refused too: it is never silently dropped.
            rejected = 1
            let letter = DeadLetter(stage: "jobs", subject: message.subject, messageID: message.messageID, origin: message.origin,
                                    line: 1, column: 1, code: "empty_message", reason: "the message holds no line",
                                    raw: "", receivedAt: message.receivedAt)
            try deadLetter(letter)
            firstError = letter.summary
        }
        try publishResult(for: message, ok: rejected == 0, events: results, error: firstError)
        try database.prepare("INSERT INTO applied_message (origin, applied_at) VALUES (?, ?)").run([.text(message.origin), .integer(message.receivedAt)])
        counters.add("jobs.messages")
        return .applied(accepted: accepted, rejected: rejected)
    }

    func deadLetter(_ letter: DeadLetter) throws {
        try PipelineSchema.insert(letter, into: database)
        try outbox.append(OutboxMessage(subject: "\(config.publish.deadLetterPrefix).\(letter.stage)",
                                        messageID: "dlq-\(letter.stage)-\(letter.origin)-\(letter.line)-\(letter.code)",
                                        payload: Array(letter.json.jsonText.utf8)))
        counters.add("dead_letters.\(letter.stage).\(letter.code)")
        logger.warning("dead letter", metadata: ["stage": "\(letter.stage)", "origin": "\(letter.origin)", "code": "\(letter.code)",
                                                 "error": "\(letter.summary)"])
    }

    private func publishResult(for message: IncomingMessage, ok: Bool, events: [JSONValue], error: String?) throws {
        var b = JSONObjectBuilder()
        b.add("ok", ok)
        b.add("stage", "jobs")
        b.addIfPresent("messageId", message.messageID.map(JSONValue.string))
        b.add("origin", message.origin)
        b.add("events", .array(events))
        b.addIfPresent("error", error.map(JSONValue.string))
        let payload = Array(b.value.jsonText.utf8)
        if let id = message.messageID {
            try outbox.append(OutboxMessage(subject: "\(config.publish.resultPrefix).jobs.\(Self.subjectToken(id))",
                                            messageID: "result-\(message.origin)", payload: payload))
        }
        if let reply = message.reply {
            try outbox.append(OutboxMessage(subject: reply, messageID: "reply-\(message.origin)", payload: payload))
        }
    }

    /// A message id as one subject token: characters NATS gives meaning to (`.`, `*`, `>`,
    /// whitespace) become `_`.
    public static func subjectToken(_ id: String) -> String {
        String(id.map { c -> Character in
            c == "." || c == "*" || c == ">" || c.isWhitespace || !c.isASCII ? "_" : c
        })
    }

    /// Writes the archive entry of every stopped job still waiting for it, and records the
    /// outcome (monitoring status 3, or 2 with an error log). Returns how many were written.
    @discardableResult
    public func archivePending() throws -> Int {
        var written = 0
        while true {
            let pending = try stage.pendingArchive(limit: 256)
            if pending.isEmpty { return written }
            let jobs = pending.map { job -> JobRecord in
                var archived = job
                archived.monitoringStatus = 3
                return archived
            }
            let results = archive.write(jobs)
            try database.transaction {
                for (job, result) in zip(jobs, results) {
                    switch result {
                    case .success:
                        try stage.setMonitoringStatus(id: job.id, 3)
                        written += 1
                        counters.add("jobs.archived")
                    case .failure(let error):
                        try stage.setMonitoringStatus(id: job.id, 2)
                        counters.add("jobs.archive_failed")
                        logger.error("archiving failed", metadata: ["job": "\(job.start.jobId)", "cluster": "\(job.start.cluster)", "error": "\(error)"])
                    }
                }
            }
        }
    }

    /// Dead-letters stops that waited longer than the configured time for their start.
    @discardableResult
    public func expireHeldStops(now: Int64) throws -> Int {
        try database.transaction {
            let expired = try stage.expireHeldStops(before: now - Int64(config.jobs.heldStopTimeoutSeconds))
            for held in expired {
                try deadLetter(DeadLetter(stage: "jobs", subject: config.intake.jobSubject, messageID: nil, origin: held.origin,
                                          line: 1, column: 1, code: "held_stop_expired",
                                          reason: "no start arrived within \(config.jobs.heldStopTimeoutSeconds) s for stop \(held.stop)",
                                          raw: held.raw, receivedAt: now))
            }
            return expired.count
        }
    }

    /// Forgets delivery identities older than `cutoff` (they can no longer be redelivered).
    public func pruneApplied(before cutoff: Int64) throws {
        try database.prepare("DELETE FROM applied_message WHERE applied_at < ?").run([.integer(cutoff)])
    }
}
