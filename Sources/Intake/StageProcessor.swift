import Config
import LineProtocol
import Logging
import Model
import Observability
import Store

/// What became of one message after its batch committed.
public enum MessageDisposition: Sendable, Equatable {
    /// Applied; `rejected` entries were dead-lettered, `accepted` entries took effect (or were
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

/// The outcome of one entry of a line: a line is one entry for jobs, one per node for node
/// states.
public enum LineResult: Sendable {
    /// Took effect; the JSON describes it in the message's result (`.null` when the message
    /// has no result receiver, ``IncomingMessage/hasResultReceiver``).
    case accepted(JSONValue)
    /// Refused: dead-lettered with this column, code and reason; `entry` names the part of
    /// the line (`nodes[3]`) when a line has several, and `raw` is then that part's text
    /// (nil: the whole line).
    case rejected(column: Int, code: String, reason: String, entry: String?, raw: String? = nil)
    /// Of a cluster another instance owns (`intake.clusters`): left to it — no effect, no
    /// dead letter, no result entry.
    case notOwned
}

/// What a stage does with one decoded line, inside the batch transaction.
public protocol LineHandler: AnyObject {
    /// The stage name: dead-letter and result subjects, counters.
    var stage: String { get }
    /// Applies one line. Throws only errors that must retry the whole batch (transient
    /// database errors).
    func handle(_ view: PointView, message: IncomingMessage, raw: String) throws -> [LineResult]
    /// The batch committed: hand its effects on (to health evaluation, ...).
    func committed()
    /// The batch rolled back: forget its effects.
    func rolledBack()
    /// Decodes a line's content without the database — pure, so it runs on the thread that
    /// fetched the message, off the writer (``StageProcessor/predecode(_:)``); nil: the handler
    /// decodes in ``handle(_:message:raw:)``.
    var predecoder: (@Sendable (PointView) -> any Sendable)? { get }
    /// Applies one line that ``predecoder`` decoded into `value`, as ``handle(_:message:raw:)``
    /// applies the line itself.
    func handle(predecoded value: any Sendable, line: Int, message: IncomingMessage, raw: String) throws -> [LineResult]
}

extension LineHandler {
    /// Lines are decoded when they are applied.
    public var predecoder: (@Sendable (PointView) -> any Sendable)? { nil }

    /// Never called without a ``predecoder``.
    public func handle(predecoded value: any Sendable, line: Int, message: IncomingMessage, raw: String) throws -> [LineResult] {
        throw PredecodedValueError(stage: stage, value: value)
    }
}

/// A predecoded line reached a handler that did not make it (a wiring mistake, never input):
/// the batch is retried, and the message dead-lettered as a poison pill after its attempts.
public struct PredecodedValueError: Error, CustomStringConvertible {
    /// The stage.
    public let stage: String
    /// The type of what it was handed.
    public let type: String

    /// The error of `stage` handed `value`.
    public init(stage: String, value: any Sendable) {
        self.stage = stage
        type = "\(Swift.type(of: value))"
    }

    public var description: String { "\(stage): a line decoded ahead as \(type), which this stage does not decode" }
}

/// Applies batches of messages in one SQLite transaction: decodes every line, lets the
/// stage's handler apply it, dead-letters what is refused, and queues results and dead
/// letters in the outbox — all committed together. Redeliveries of committed messages are
/// recognised by their delivery identity and only acknowledged.
open class StageProcessor: @unchecked Sendable {
    /// The writer connection (used by one thread at a time).
    public let database: Database
    let handler: any LineHandler
    package let outbox: Outbox
    package let config: ClusterdConfig
    package let counters: PipelineCounters
    package let logger: Logger
    private let decoder: LineDecoder
    /// The handler's ``LineHandler/predecoder``, taken once: ``predecode(_:)`` runs on other
    /// threads and must not touch the handler.
    private let predecoder: (@Sendable (PointView) -> any Sendable)?

    /// A processor over an open, migrated database.
    public init(database: Database, handler: any LineHandler, precision: Precision = .nanoseconds, config: ClusterdConfig,
                counters: PipelineCounters, logger: Logger) {
        self.database = database
        self.handler = handler
        outbox = Outbox(database)
        self.config = config
        self.counters = counters
        self.logger = logger
        decoder = LineDecoder(precision: precision)
        predecoder = handler.predecoder
    }

    /// The largest message decoded ahead. Two batches wait decoded at most, and a decoded event
    /// takes a few times its bytes: a batch of large many-line messages (up to the broker's
    /// `max_payload` each) is decoded line by line in its batch instead, as before, so memory
    /// stays bounded by what the broker delivers. A hook's event (~0.5 KB) is far below.
    public static let maxPredecodedBytes = 16 * 1024

    /// Decodes `message`'s lines ahead (``IncomingMessage/decoded``) when the stage's handler
    /// can do so without the database: called on the thread that fetched the message, while
    /// the writer applies the batch before, so the decoding is off the one writer's time.
    /// Thread-safe; a message it leaves alone is decoded when applied, as before.
    public func predecode(_ message: inout IncomingMessage) {
        guard let predecoder, message.decoded == nil, message.data.count <= Self.maxPredecodedBytes else { return }
        // A decoder of its own: the writer's is in use meanwhile (it costs a few allocations).
        var lines: [DecodedLines.Line] = []
        LineDecoder(precision: decoder.precision).forEachLine(in: message.data) { entry in
            switch entry {
            case .error(let error, let raw):
                lines.append(.error(error, raw: String(decoding: raw, as: UTF8.self)))
            case .point(let view):
                lines.append(.point(line: view.line, raw: String(decoding: view.raw, as: UTF8.self), value: predecoder(view)))
            }
        }
        message.decoded = DecodedLines(lines)
    }

    /// Applies `messages` in one transaction. Throws only when the whole batch must be
    /// retried later (a transient database error); then nothing of it was committed.
    public func process(_ messages: [IncomingMessage]) throws -> [MessageDisposition] {
        beforeBatch()
        do {
            return try apply(messages)
        } catch is Database.PartialEvent {
            // An event failed halfway (``Database/event(_:)``): the batch again, each event
            // in a savepoint of its own, so that it alone is undone and refused.
            counters.add("intake.batches_redone")
            database.carefulEvents = true
            defer { database.carefulEvents = false }
            return try apply(messages)
        }
    }

    /// One try at `messages` in one transaction.
    private func apply(_ messages: [IncomingMessage]) throws -> [MessageDisposition] {
        let result: [MessageDisposition]
        do {
            result = try database.transaction { try messages.map { try self.processOne($0) } }
        } catch {
            pendingCounts.discard()
            handler.rolledBack()
            throw error
        }
        countCommitted()
        handler.committed()
        return result
    }

    /// The owner of ``database`` when it is shared (the service): work outside a batch
    /// (archive outcomes, retention, held-stop expiry) takes it through ``exclusive(_:)``.
    public var writer: DatabaseWriter?

    /// Runs `body` holding ``writer`` (directly without one, as in single-threaded tests).
    package func exclusive<T>(_ body: () throws -> T) rethrows -> T {
        guard let writer else { return try body() }
        return try writer.perform { _ in try body() }
    }

    /// Runs on the loop's thread before each batch (takes the reloaded cluster registry).
    package var beforeBatch: () -> Void = {}

    /// Counter increments of the transaction in flight: counted when it commits, so a batch
    /// rolled back and retried counts once.
    private var pendingCounts = BatchCounts()

    func count(_ name: String, _ n: Int = 1) { pendingCounts.add(name, n) }

    private func countCommitted() { pendingCounts.commit(to: counters) }

    private func processOne(_ message: IncomingMessage) throws -> MessageDisposition {
        if try isApplied(message) {
            // A repeat in core mode is answered too (through the outbox, as every reply is).
            if let reply = message.reply {
                try outbox.append(OutboxMessage(subject: reply, messageID: "reply-duplicate-\(message.origin)-\(ContentHash.hex(reply))",
                                                payload: Array(#"{"ok":true,"duplicate":true}"#.utf8)))
            }
            return .alreadyApplied
        }
        if message.deliveries > 1 {
            // Applied at last: the breaker forgets its attempts (with this transaction).
            try database.prepare("DELETE FROM intake_attempt WHERE origin = ?").run([.text(message.origin)])
        }
        let stage = handler.stage
        var accepted = 0
        var rejected = 0
        var notOwned = 0
        var results: [JSONValue] = []
        let wantsResults = message.hasResultReceiver
        var firstError: String?
        var beyond: [String: Int] = [:]
        // Records one line's outcome: counts, dead letters and its entries of the result.
        func take(line: Int, raw: String, _ lineResults: [LineResult]) throws {
            for r in lineResults {
                if case .notOwned = r {
                    notOwned += 1
                    continue
                }
                var entryJSON = JSONObjectBuilder()
                entryJSON.add("line", line)
                switch r {
                case .accepted(let json):
                    accepted += 1
                    // Nobody receives a result: nothing to describe (the common hook's event).
                    guard wantsResults else { continue }
                    if case .object(let members) = json { for m in members { entryJSON.add(m.key, m.value) } }
                case .rejected(let column, let code, let reason, let part, let quoted):
                    rejected += 1
                    let letter = DeadLetter(stage: stage, subject: message.subject, messageID: message.messageID, origin: message.origin,
                                            line: line, column: column, code: code, reason: reason,
                                            raw: quoted.map { DeadLetter.bounded($0, DeadLetter.maxRaw).text } ?? raw, receivedAt: message.receivedAt)
                    if rejected <= Self.maxLettersPerMessage {
                        try deadLetter(letter, entry: part)
                    } else {
                        // Beyond the bound: counted and summarised in one letter at the end.
                        count("dead_letters.\(stage).\(code)")
                        beyond[code, default: 0] += 1
                    }
                    firstError = firstError ?? letter.summary
                    entryJSON.addIfPresent("entry", part.map(JSONValue.string))
                    entryJSON.add("status", "rejected")
                    entryJSON.add("code", code)
                    entryJSON.add("error", DeadLetter.bounded(letter.summary, DeadLetter.maxReason).text)
                case .notOwned:
                    break
                }
                results.append(entryJSON.value)
            }
        }
        if let decoded = message.decoded {
            for entry in decoded.lines {
                switch entry {
                case .error(let error, let raw):
                    try take(line: error.line, raw: raw, Self.syntaxRejection(error))
                case .point(let line, let raw, let value):
                    try take(line: line, raw: raw, try handler.handle(predecoded: value, line: line, message: message, raw: raw))
                }
            }
        } else {
            try decoder.forEachLine(in: message.data) { entry in
                switch entry {
                case .error(let error, let raw):
                    try take(line: error.line, raw: String(decoding: raw, as: UTF8.self), Self.syntaxRejection(error))
                case .point(let view):
                    let raw = String(decoding: view.raw, as: UTF8.self)
                    try take(line: view.line, raw: raw, try handler.handle(view, message: message, raw: raw))
                }
            }
        }
        if !beyond.isEmpty {
            let codes = beyond.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
            try deadLetter(DeadLetter(stage: stage, subject: message.subject, messageID: message.messageID, origin: message.origin,
                                      line: 0, column: 0, code: "more_rejections",
                                      reason: "\(rejected - Self.maxLettersPerMessage) more entries of this message were refused (\(codes)); the first \(Self.maxLettersPerMessage) have letters of their own",
                                      raw: "", receivedAt: message.receivedAt), counted: false)
        }
        if notOwned > 0 { count("\(stage).not_owned", notOwned) }
        if accepted == 0 && rejected == 0 && notOwned == 0 {
            // An empty message is refused too: it is never silently dropped.
            rejected = 1
            let letter = DeadLetter(stage: stage, subject: message.subject, messageID: message.messageID, origin: message.origin,
                                    line: 1, column: 1, code: "empty_message", reason: "the message holds no line",
                                    raw: "", receivedAt: message.receivedAt)
            try deadLetter(letter)
            firstError = letter.summary
        }
        if let replayed = message.replayOf {
            // The letter has been dealt with: applied now, or recorded again as a new letter.
            try database.prepare("DELETE FROM dead_letter WHERE id = ? AND stage = ?").run([.integer(replayed), .text(stage)])
            count("\(stage).replays")
        }
        // Only the owning instance answers a message that is entirely another's.
        if accepted + rejected > 0 { try publishResult(for: message, ok: rejected == 0, events: results, error: firstError) }
        try database.prepare(static: "INSERT INTO applied_message (origin, applied_at) VALUES (?, ?)").run([.text(message.origin), .integer(message.receivedAt)])
        count("\(stage).messages")
        return .applied(accepted: accepted, rejected: rejected)
    }

    /// A line the line-protocol decoder refused, as its one entry.
    private static func syntaxRejection(_ error: DecodeError) -> [LineResult] {
        [.rejected(column: error.column, code: "syntax", reason: error.reason.description, entry: nil)]
    }

    /// Whether this delivery's effects are committed already.
    func isApplied(_ message: IncomingMessage) throws -> Bool {
        try database.prepare(static: "SELECT 1 FROM applied_message WHERE origin = ?").first([.text(message.origin)]) { _ in true } ?? false
    }

    // MARK: poison-pill breaker

    /// What earlier attempts at one message left behind.
    public struct Attempts: Sendable, Equatable {
        /// Attempts begun.
        public var started = 0
        /// Of those, attempts that failed with an error (the others ended with the process).
        public var failed = 0
        /// The last failure's error.
        public var lastError: String?
    }

    /// The attempts recorded for `message`.
    public func attempts(_ message: IncomingMessage) throws -> Attempts {
        try database.prepare("SELECT attempts, failures, last_error FROM intake_attempt WHERE origin = ?")
            .first([.text(message.origin)]) { Attempts(started: Int($0.int(0)), failed: Int($0.int(1)), lastError: $0.isNull(2) ? nil : $0.text(2)) }
            ?? Attempts()
    }

    /// Records, committed before the attempt, that `message` is about to be applied: if the
    /// process dies in it, the next run knows.
    public func beginAttempt(_ message: IncomingMessage) throws {
        try database.prepare("""
            INSERT INTO intake_attempt (origin, stage, attempts, updated_at) VALUES (?, ?, 1, ?)
            ON CONFLICT (origin) DO UPDATE SET attempts = attempts + 1, updated_at = excluded.updated_at
            """).run([.text(message.origin), .text(handler.stage), .integer(message.receivedAt)])
    }

    /// The attempt failed: with `error` (it counts), or transiently (it does not: a busy or
    /// full database says nothing about the message).
    public func endAttempt(_ message: IncomingMessage, error: String?) throws {
        if let error {
            try database.prepare("UPDATE intake_attempt SET failures = failures + 1, last_error = ? WHERE origin = ?")
                .run([.text(String(error.prefix(2000))), .text(message.origin)])
        } else {
            try database.prepare("UPDATE intake_attempt SET attempts = attempts - 1 WHERE origin = ?").run([.text(message.origin)])
        }
    }

    /// Gives up on `message` after `attempts`: one dead letter (`poison_pill`, saying how the
    /// attempts ended) and a failed result, in one transaction; the caller terminates it.
    public func poison(_ message: IncomingMessage, after attempts: Attempts) throws {
        let crashed = attempts.started - attempts.failed
        var how: [String] = []
        if attempts.failed > 0 { how.append("\(attempts.failed) failed (last error: \(attempts.lastError ?? "?"))") }
        if crashed > 0 { how.append("\(crashed) ended with the process (a crash or a kill: that run's log says which)") }
        let reason = "applying this message was attempted \(attempts.started) times and never finished: \(how.joined(separator: "; ")); it is not retried again (intake.max_attempts)"
        let letter = DeadLetter(stage: handler.stage, subject: message.subject, messageID: message.messageID, origin: message.origin,
                                line: 0, column: 0, code: "poison_pill", reason: reason,
                                raw: String(decoding: message.data, as: UTF8.self), receivedAt: message.receivedAt)
        do {
            try database.transaction {
                try deadLetter(letter)
                try publishResult(for: message, ok: false, events: [], error: letter.summary)
                try database.prepare("DELETE FROM intake_attempt WHERE origin = ?").run([.text(message.origin)])
            }
        } catch {
            pendingCounts.discard()
            throw error
        }
        countCommitted()
        counters.add("intake.poison_pills")
    }

    /// Forgets attempts at messages not seen since `cutoff` (their messages are gone).
    public func pruneAttempts(before cutoff: Int64) throws {
        try database.prepare("DELETE FROM intake_attempt WHERE stage = ? AND updated_at < ?").run([.text(handler.stage), .integer(cutoff)])
    }

    /// Dead letters one message may write; the rest are counted and summarised in one
    /// `more_rejections` letter, so a message's cost is bounded whatever it holds.
    public static let maxLettersPerMessage = 100

    /// Stores `letter` and queues it on `<dead_letter_prefix>.<stage>`.
    package func deadLetter(_ letter: DeadLetter, entry: String? = nil, counted: Bool = true) throws {
        try PipelineSchema.insert(letter, into: database)
        let part = entry.map { "-\($0)" } ?? ""
        try outbox.append(OutboxMessage(subject: "\(config.publish.deadLetterPrefix).\(letter.stage)",
                                        messageID: "dlq-\(letter.stage)-\(letter.origin)-\(letter.line)\(part)-\(letter.code)",
                                        payload: letter.json.jsonBytes))
        if counted { count("dead_letters.\(letter.stage).\(letter.code)") }
        logger.warning("dead letter", metadata: ["stage": "\(letter.stage)", "origin": "\(letter.origin)", "code": "\(letter.code)",
                                                 "error": "\(letter.summary)"])
    }

    private func publishResult(for message: IncomingMessage, ok: Bool, events: [JSONValue], error: String?) throws {
        var b = JSONObjectBuilder()
        b.add("ok", ok)
        b.add("stage", handler.stage)
        b.addIfPresent("messageId", message.messageID.map(JSONValue.string))
        b.add("origin", message.origin)
        // A message of many lines gets the first entries (a summary, not a copy: the dead
        // letters hold every refusal), so the result always fits the broker's max_payload.
        b.add("events", .array(Array(events.prefix(Self.maxResultEvents))))
        if events.count > Self.maxResultEvents {
            b.add("eventsTotal", events.count)
            b.add("eventsTruncated", true)
        }
        b.addIfPresent("error", error.map { JSONValue.string(DeadLetter.bounded($0, DeadLetter.maxReason).text) })
        let payload = b.value.jsonBytes
        if let id = message.messageID {
            try outbox.append(OutboxMessage(subject: "\(config.publish.resultPrefix).\(handler.stage).\(Self.subjectToken(id))",
                                            messageID: "result-\(message.origin)", payload: payload))
        }
        if let reply = message.reply {
            try outbox.append(OutboxMessage(subject: reply, messageID: "reply-\(message.origin)", payload: payload))
        }
    }

    /// The most entries a message's result lists.
    public static let maxResultEvents = 100

    /// A message id as one subject token: characters NATS gives meaning to (`.`, `*`, `>`,
    /// whitespace) become `_`.
    public static func subjectToken(_ id: String) -> String {
        String(id.map { c -> Character in
            c == "." || c == "*" || c == ">" || c.isWhitespace || !c.isASCII ? "_" : c
        })
    }

    /// Forgets delivery identities older than `cutoff` (they can no longer be redelivered).
    public func pruneApplied(before cutoff: Int64) throws {
        try database.prepare("DELETE FROM applied_message WHERE applied_at < ?").run([.integer(cutoff)])
    }

    /// Deletes this stage's dead letters received before `cutoff`; returns how many.
    @discardableResult
    public func pruneDeadLetters(before cutoff: Int64) throws -> Int {
        try database.prepare("DELETE FROM dead_letter WHERE stage = ? AND received_at < ?").run([.text(handler.stage), .integer(cutoff)])
        return database.changes
    }
}
