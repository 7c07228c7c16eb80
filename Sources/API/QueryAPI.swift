import Audit
import Bus
import Foundation
import Health
import Intake
import Jobs
import Model
import Processing
import Store

/// The read side over request/reply: `clusterd.api.<resource>.<verb>` endpoints of the
/// `clusterd` micro service (JSON in, JSON out; errors as `Nats-Service-Error` headers).
/// Reads use their own SQLite connection; health questions go to the health loop.
public final class QueryAPI: @unchecked Sendable {
    let database: Database
    let clusters: Reloadable<ClusterRegistry>
    let health: HealthLoop?
    /// Publishes a replayed line: subject, body, headers (JetStream when durable).
    let republish: (@Sendable (String, [UInt8], [String: [String]]) throws -> Void)?
    let lock = NSLock()

    /// Subject prefix of every endpoint.
    public static let prefix = "clusterd.api"

    /// An API over a read connection to clusterd's database.
    public init(database: Database, clusters: Reloadable<ClusterRegistry>, health: HealthLoop?,
                republish: (@Sendable (String, [UInt8], [String: [String]]) throws -> Void)? = nil) {
        self.republish = republish
        self.database = database
        self.clusters = clusters
        self.health = health
    }

    /// The endpoints, for ``MicroService``.
    public var endpoints: [MicroService.Endpoint] {
        [
            endpoint("jobs", "get", "A job by jobId (+ cluster, startTime): meta.json fields and state", { try $0.jobGet($1) }),
            endpoint("jobs", "list", "Jobs by cluster, user, project, state, start-time range; paged", { try $0.jobList($1) }),
            endpoint("nodes", "get", "A node's current state (and its change points with history: true)", { try $0.nodeGet($1) }),
            endpoint("nodes", "list", "Current node states by cluster, state, health; paged", { try $0.nodeList($1) }),
            endpoint("health", "get", "Health roll-up of sites, a site, room, aisle, rack or device, or a host's checks", { try $0.healthGet($1) }),
            endpoint("alerts", "active", "Firing alerts by cluster, severity, entity", { try $0.alertsActive($1) }),
            endpoint("alerts", "history", "Alert transitions by entity, check and time range; paged", { try $0.alertsHistory($1) }),
            endpoint("dlq", "list", "Dead letters by stage and code; paged", { try $0.deadLetters($1) }),
            endpoint("audit", "list", "Administrative actions (who, what, when, request, state before and result) by resource, actor, time range; paged",
                     { try $0.auditList($1) }),
            endpoint("dlq", "parked", "Outbox messages parked because the broker can never take them; paged", { try $0.parked($1) }),
            replaying(endpoint("dlq", "replay", "Publish dead letters (by id, or by stage and code) again on their subject (admin)", { try $0.replay($1) },
                               subject: "clusterd.admin.dlq.replay", name: "admin-dlq-replay")),
            // The old subject, kept for one release: read-only users get clusterd.api.>, and a
            // replay changes state, so it moved under clusterd.admin.
            replaying(endpoint("dlq", "replay", "Deprecated alias of clusterd.admin.dlq.replay (removed in the next release)", { try $0.replay($1) })),
        ]
    }

    /// A replay endpoint whose audit shows the dead letters it picked, as they were.
    private func replaying(_ endpoint: MicroService.Endpoint) -> MicroService.Endpoint {
        var endpoint = endpoint
        endpoint.before = MicroService.StateRead(lock: nil) { [self] message in
            guard let o = try? StrictObject(try JSONValue.parse(message.data), allowed: Self.keys["dlq.replay"] ?? []) else { return Array("null".utf8) }
            lock.lock()
            defer { lock.unlock() }
            let letters: [(id: Int64, subject: String, stage: String, code: String, raw: String)]
            do { letters = try self.letters(o) } catch is MicroService.Failure {
                return Array("null".utf8)  // the replay refuses it too: it picks nothing
            } catch {
                return JSONValue.unreadable(error).jsonBytes
            }
            return Array(JSONValue.array(letters.map { l in
                .object([("id", .integer(l.id)), ("subject", .string(l.subject)), ("stage", .string(l.stage)), ("code", .string(l.code))])
            }).jsonText.utf8)
        }
        return endpoint
    }

    private func endpoint(_ resource: String, _ verb: String, _ about: String,
                          _ body: @escaping @Sendable (QueryAPI, StrictObject) throws -> JSONValue,
                          subject: String? = nil, name: String? = nil) -> MicroService.Endpoint {
        MicroService.Endpoint(name: name ?? "\(resource)-\(verb)", subject: subject ?? "\(Self.prefix).\(resource).\(verb)",
                              metadata: ["description": about]) { [self] message throws(MicroService.Failure) in
            do {
                let request = message.data.allSatisfy { $0 == 0x20 || $0 == 0x0a } ? JSONValue.object([]) : try JSONValue.parse(message.data)
                let allowed = Self.keys[resource + "." + verb] ?? []
                let object = try StrictObject(request, allowed: allowed)
                lock.lock()
                defer { lock.unlock() }
                return try body(self, object).jsonBytes
            } catch let f as MicroService.Failure {
                throw f
            } catch let e as JSONFieldError {
                throw MicroService.Failure(400, "\(e.path): \(e.reason) (allowed: \((Self.keys[resource + "." + verb] ?? []).joined(separator: ", ")))")
            } catch let e as JSONParseError {
                throw MicroService.Failure(400, "request is not JSON: \(e)")
            } catch {
                throw MicroService.Failure(500, "\(error)")
            }
        }
    }

    static let paging = ["limit", "offset"]
    static let keys: [String: [String]] = [
        "jobs.get": ["jobId", "cluster", "startTime"],
        "jobs.list": ["cluster", "user", "project", "state", "from", "to"] + paging,
        "nodes.get": ["cluster", "hostname", "history"],
        "nodes.list": ["cluster", "state", "health"] + paging,
        "health.get": ["site", "room", "aisle", "rack", "device", "hostname"],
        "alerts.active": ["cluster", "severity", "entity"] + paging,
        "alerts.history": ["entity", "check", "from", "to"] + paging,
        "dlq.list": ["stage", "code"] + paging,
        "dlq.parked": paging,
        "audit.list": ["resource", "actor", "from", "to"] + paging,
        "dlq.replay": ["id", "stage", "code", "limit"],
    ]

    /// `limit` (1...1000, default 50) and `offset`.
    static func page(_ o: StrictObject) throws -> (limit: Int64, offset: Int64) {
        (try o.int("limit", 1...1000) ?? 50, try o.int("offset", 0...Int64.max) ?? 0)
    }

    /// `WHERE` clauses for the given optional filters (column, value).
    static func filters(_ pairs: [(String, SQLValue?)]) -> (sql: String, values: [SQLValue]) {
        let present = pairs.compactMap { p in p.1.map { (p.0, $0) } }
        return (present.isEmpty ? "" : " WHERE " + present.map(\.0).joined(separator: " AND "), present.map(\.1))
    }

    static func text(_ s: String?) -> SQLValue? { s.map(SQLValue.text) }
    static func int(_ i: Int64?) -> SQLValue? { i.map(SQLValue.integer) }

    private func listed(_ key: String, _ rows: [JSONValue], total: Int64, page: (limit: Int64, offset: Int64)) -> JSONValue {
        .object([(key, .array(rows)), ("total", .integer(total)), ("limit", .integer(page.limit)), ("offset", .integer(page.offset))])
    }

    // MARK: jobs

    func jobGet(_ o: StrictObject) throws -> JSONValue {
        guard let jobId = try o.int("jobId") else { throw MicroService.Failure(400, "jobId is required") }
        let (sql, values) = Self.filters([("job_id = ?", .integer(jobId)), ("cluster = ?", Self.text(try o.string("cluster"))),
                                          ("start_time = ?", Self.int(try o.int("startTime")))])
        guard let id = try database.prepare("SELECT id FROM job\(sql) ORDER BY id DESC LIMIT 1").first(values, { $0.int(0) }) else {
            throw MicroService.Failure(404, "no job \(jobId) matches")
        }
        let record = try JobStage(database: database, clusters: clusters.current).load(id: id)
        return .object([("job", try JSONValue.parse(Array(record.metaJSON.utf8)))])
    }

    func jobList(_ o: StrictObject) throws -> JSONValue {
        let page = try Self.page(o)
        let (sql, values) = Self.filters([("cluster = ?", Self.text(try o.string("cluster"))), ("hpc_user = ?", Self.text(try o.string("user"))),
                                          ("project = ?", Self.text(try o.string("project"))), ("job_state = ?", Self.text(try o.string("state"))),
                                          ("start_time >= ?", Self.int(try o.int("from"))), ("start_time <= ?", Self.int(try o.int("to")))])
        let total = try database.prepare("SELECT count(*) FROM job\(sql)").first(values) { $0.int(0) } ?? 0
        let rows = try database.prepare("""
            SELECT job_id, cluster, subcluster, hpc_user, project, job_state, start_time, duration, num_nodes, monitoring_status
            FROM job\(sql) ORDER BY start_time DESC, id DESC LIMIT ? OFFSET ?
            """).rows(values + [.integer(page.limit), .integer(page.offset)]) { r -> JSONValue in
            .object([("jobId", .integer(r.int(0))), ("cluster", .string(r.text(1))), ("subCluster", .string(r.text(2))),
                     ("user", .string(r.text(3))), ("project", .string(r.text(4))), ("jobState", .string(r.text(5))),
                     ("startTime", .integer(r.int(6))), ("duration", .integer(r.int(7))), ("numNodes", .integer(r.int(8))),
                     ("monitoringStatus", .integer(r.int(9)))])
        }
        return listed("jobs", rows, total: total, page: page)
    }

    // MARK: nodes

    static let nodeColumns = """
        n.cluster, n.hostname, n.subcluster, s.node_state, s.slurm_flags, s.health_state, coalesce(s.health_metrics, ''), s.time_stamp,
        s.last_seen, s.cpus_allocated, s.memory_allocated, s.gpus_allocated, s.jobs_running
        """

    static func nodeRow(_ r: Statement) -> JSONValue {
        .object([("cluster", .string(r.text(0))), ("hostname", .string(r.text(1))), ("subCluster", .string(r.text(2))),
                 ("state", .string(r.text(3))), ("flags", .string(r.text(4))), ("health", .string(r.text(5))),
                 ("healthMetrics", (try? JSONValue.parse(Array(r.text(6).utf8))) ?? .null), ("since", .integer(r.int(7))),
                 ("lastSeen", .integer(r.int(8))), ("cpusAllocated", .integer(r.int(9))), ("memoryAllocated", .integer(r.int(10))),
                 ("gpusAllocated", .integer(r.int(11))), ("jobsRunning", .integer(r.int(12)))])
    }

    /// The newest change point of each node.
    static let currentState = "s.id = (SELECT id FROM node_state x WHERE x.node_id = n.id ORDER BY time_stamp DESC, id DESC LIMIT 1)"

    func nodeGet(_ o: StrictObject) throws -> JSONValue {
        guard let cluster = try o.string("cluster"), let host = try o.string("hostname") else {
            throw MicroService.Failure(400, "cluster and hostname are required")
        }
        let rows = try database.prepare("""
            SELECT \(Self.nodeColumns) FROM node n JOIN node_state s ON s.node_id = n.id
            WHERE n.cluster = ? AND n.hostname = ? ORDER BY s.time_stamp, s.id
            """).rows([.text(cluster), .text(host)], Self.nodeRow)
        guard let current = rows.last else { throw MicroService.Failure(404, "no node \(host) in \(cluster)") }
        var members: [(key: String, value: JSONValue)] = [("node", current)]
        if o.raw("history") == .bool(true) { members.append(("history", .array(rows))) }
        return .object(members)
    }

    func nodeList(_ o: StrictObject) throws -> JSONValue {
        let page = try Self.page(o)
        var (sql, values) = Self.filters([("n.cluster = ?", Self.text(try o.string("cluster"))), ("s.node_state = ?", Self.text(try o.string("state"))),
                                          ("s.health_state = ?", Self.text(try o.string("health")))])
        sql = sql.isEmpty ? " WHERE \(Self.currentState)" : sql + " AND \(Self.currentState)"
        let from = "FROM node n JOIN node_state s ON s.node_id = n.id\(sql)"
        let total = try database.prepare("SELECT count(*) \(from)").first(values) { $0.int(0) } ?? 0
        let rows = try database.prepare("SELECT \(Self.nodeColumns) \(from) ORDER BY n.cluster, n.hostname LIMIT ? OFFSET ?")
            .rows(values + [.integer(page.limit), .integer(page.offset)], Self.nodeRow)
        return listed("nodes", rows, total: total, page: page)
    }

    // MARK: health

    func healthGet(_ o: StrictObject) throws -> JSONValue {
        guard let health else { throw MicroService.Failure(503, "health evaluation is not running") }
        let site = try o.string("site"), room = try o.string("room"), aisle = try o.string("aisle"), rack = try o.string("rack")
        let device = try o.string("device"), host = try o.string("hostname")
        let answer: JSONValue? = health.inspect { engine -> JSONValue in
            let topology = engine.topology
            func entry(_ kind: String, _ id: String, _ severity: Severity, _ children: JSONValue? = nil) -> JSONValue {
                var m: [(key: String, value: JSONValue)] = [(kind, .string(id)), ("severity", .string(severity.rawValue))]
                if let children { m.append(("children", children)) }
                return .object(m)
            }
            if let host {
                let checks = engine.targets(entity: host).map { t -> JSONValue in
                    var b = JSONObjectBuilder()
                    b.add("check", t.key.check)
                    b.add("cluster", t.key.cluster)
                    if !t.key.component.isEmpty { b.add("component", t.key.component) }
                    b.add("severity", t.raw.rawValue)
                    b.add("firing", t.firing.map { JSONValue.string($0.rawValue) } ?? .null)
                    b.addIfPresent("since", t.since.map(JSONValue.integer))
                    b.add("flapping", t.flapping)
                    b.addIfPresent("value", t.value.map(JSONValue.double))
                    b.add("lastInput", t.lastInput)
                    return b.value
                }
                let p = topology.placement(of: host)
                return .object([("hostname", .string(host)), ("severity", .string(engine.severity(ofHost: host).rawValue)),
                                ("rack", p.map { .string($0.rack) } ?? .null), ("room", p.map { .string($0.room) } ?? .null),
                                ("site", p.map { .string($0.site) } ?? .null), ("checks", .array(checks))])
            }
            func hosts(_ ids: [String]?) -> JSONValue { .array((ids ?? []).map { entry("hostname", $0, engine.severity(ofHost: $0)) }) }
            func racks(_ ids: [String]?) -> JSONValue { .array((ids ?? []).map { entry("rack", $0, engine.severity(ofRack: $0)) }) }
            if let device { return entry("device", device, engine.severity(ofDevice: device), hosts(topology.devices[device])) }
            if let rack { return entry("rack", rack, engine.severity(ofRack: rack), hosts(topology.racks[rack])) }
            if let aisle { return entry("aisle", aisle, engine.severity(ofAisle: aisle), racks(topology.aisles[aisle])) }
            if let room { return entry("room", room, engine.severity(ofRoom: room), racks(topology.rooms[room])) }
            func siteEntry(_ s: String) -> JSONValue {
                entry("site", s, engine.severity(ofSite: s), .array((topology.sites[s] ?? []).map { entry("room", $0, engine.severity(ofRoom: $0)) }))
            }
            // One site answers like one room or rack: the entity itself; no filter lists them all.
            if let site { return siteEntry(site) }
            return .object([("sites", .array(topology.sites.keys.sorted().map(siteEntry)))])
        }
        guard let answer else { throw MicroService.Failure(503, "health evaluation did not answer in time") }
        if case .object(let m) = answer, m.first?.key != "sites", m.first?.key != "hostname",
           case .array(let children)? = answer["children"], children.isEmpty {
            throw MicroService.Failure(404, "\(m.first?.key ?? "entity") \(m.first?.value.stringValue ?? "") is not in the topology")
        }
        return answer
    }

    // MARK: alerts

    static func alertRow(_ r: Statement) -> JSONValue {
        var b = JSONObjectBuilder()
        b.add("fingerprint", r.text(0))
        b.add("labels", (try? JSONValue.parse(Array(r.text(1).utf8))) ?? .null)
        b.add("summary", r.text(2))
        b.add("severity", r.text(3))
        b.add("status", r.text(4))
        b.add("startsAt", r.int(5))
        b.addIfPresent("endsAt", r.isNull(6) ? nil : .integer(r.int(6)))
        b.add("sequence", r.int(7))
        b.add("silenced", r.int(8) != 0)
        b.add("flapping", r.int(9) != 0)
        if !r.isNull(10) { b.add("value", .double(r.double(10))) }
        // The firing parent alert (its fingerprint) that keeps this one from being sent.
        if r.columnCount > 11, !r.text(11).isEmpty { b.add("inhibitedBy", r.text(11)) }
        return b.value
    }

    func alertsActive(_ o: StrictObject) throws -> JSONValue {
        var (sql, values) = Self.filters([("cluster = ?", Self.text(try o.string("cluster"))),
                                          ("severity = ?", Self.text(try o.string("severity")?.uppercased())),
                                          ("entity = ?", Self.text(try o.string("entity")))])
        sql = sql.isEmpty ? " WHERE status = 'firing'" : sql + " AND status = 'firing'"
        // Paged like the other lists (500 by default, at most 1000: a reply stays far below
        // the broker's max_payload; 3,900 alerts used to pass 1 MB).
        let page = (limit: try o.int("limit", 1...1000) ?? 500, offset: try o.int("offset", 0...Int64.max) ?? 0)
        let total = try database.prepare("SELECT count(*) FROM alert\(sql)").first(values) { $0.int(0) } ?? 0
        let rows = try database.prepare("""
            SELECT fingerprint, labels, summary, severity, status, starts_at, ends_at, sequence, silenced, flapping, value, inhibited_by
            FROM alert\(sql) ORDER BY starts_at, fingerprint LIMIT ? OFFSET ?
            """).rows(values + [.integer(page.limit), .integer(page.offset)], Self.alertRow)
        return listed("alerts", rows, total: total, page: page)
    }

    func alertsHistory(_ o: StrictObject) throws -> JSONValue {
        let page = try Self.page(o)
        let (sql, values) = Self.filters([("a.entity = ?", Self.text(try o.string("entity"))), ("a.check_id = ?", Self.text(try o.string("check"))),
                                          ("t.at >= ?", Self.int(try o.int("from"))), ("t.at <= ?", Self.int(try o.int("to")))])
        let from = "FROM alert_transition t JOIN alert a ON a.fingerprint = t.fingerprint\(sql)"
        let total = try database.prepare("SELECT count(*) \(from)").first(values) { $0.int(0) } ?? 0
        let rows = try database.prepare("""
            SELECT t.fingerprint, a.check_id, a.cluster, a.entity, a.component, t.sequence, t.status, t.severity, t.flapping,
                   t.silenced, t.published, t.at \(from) ORDER BY t.at DESC, t.sequence DESC LIMIT ? OFFSET ?
            """).rows(values + [.integer(page.limit), .integer(page.offset)]) { r -> JSONValue in
            .object([("fingerprint", .string(r.text(0))), ("check", .string(r.text(1))), ("cluster", .string(r.text(2))),
                     ("entity", .string(r.text(3))), ("component", .string(r.text(4))), ("sequence", .integer(r.int(5))),
                     ("status", .string(r.text(6))), ("severity", .string(r.text(7))), ("flapping", .bool(r.int(8) != 0)),
                     ("silenced", .bool(r.int(9) != 0)), ("published", .bool(r.int(10) != 0)), ("at", .integer(r.int(11)))])
        }
        return listed("transitions", rows, total: total, page: page)
    }

    // MARK: dead letters

    /// Outbox messages parked by the publisher (larger than the broker's max_payload), newest first.
    func parked(_ o: StrictObject) throws -> JSONValue {
        let page = try Self.page(o)
        let total = try database.prepare("SELECT count(*) FROM outbox_parked").first { $0.int(0) } ?? 0
        let rows = try database.prepare("""
            SELECT id, subject, message_id, length(payload), reason, parked_at FROM outbox_parked ORDER BY id DESC LIMIT ? OFFSET ?
            """).rows([.integer(page.limit), .integer(page.offset)]) { r -> JSONValue in
            .object([("id", .integer(r.int(0))), ("subject", .string(r.text(1))), ("messageId", .string(r.text(2))),
                     ("bytes", .integer(r.int(3))), ("reason", .string(r.text(4))), ("parkedAt", .integer(r.int(5)))])
        }
        return listed("parked", rows, total: total, page: page)
    }

    func auditList(_ o: StrictObject) throws -> JSONValue {
        let page = try Self.page(o)
        let (entries, total) = try AuditLog(database).list(resource: try o.string("resource"), actor: try o.string("actor"),
                                                           from: try o.int("from", 0...Int64.max), to: try o.int("to", 0...Int64.max),
                                                           limit: page.limit, offset: page.offset)
        return listed("entries", entries, total: total, page: page)
    }

    func deadLetters(_ o: StrictObject) throws -> JSONValue {
        let page = try Self.page(o)
        let (sql, values) = Self.filters([("stage = ?", Self.text(try o.string("stage"))), ("code = ?", Self.text(try o.string("code")))])
        let total = try database.prepare("SELECT count(*) FROM dead_letter\(sql)").first(values) { $0.int(0) } ?? 0
        let rows = try database.prepare("""
            SELECT id, stage, subject, message_id, origin, line, col, code, reason, raw, received_at FROM dead_letter\(sql)
            ORDER BY id DESC LIMIT ? OFFSET ?
            """).rows(values + [.integer(page.limit), .integer(page.offset)]) { r -> JSONValue in
            var b = JSONObjectBuilder()
            b.add("id", r.int(0))
            b.add("stage", r.text(1))
            b.add("subject", r.text(2))
            b.addIfPresent("messageId", r.optionalText(3).map(JSONValue.string))
            b.add("origin", r.text(4))
            b.add("line", r.int(5))
            b.add("column", r.int(6))
            b.add("code", r.text(7))
            b.add("reason", r.text(8))
            b.add("raw", r.text(9))
            b.add("receivedAt", r.int(10))
            return b.value
        }
        return listed("deadLetters", rows, total: total, page: page)
    }

    /// Publishes each selected letter's line again on its subject with `Clusterd-Replay-Of`,
    /// so it takes the normal path; the stage removes the letter when it applies the replay.
    /// The dead letters a replay request picks (by id, or stage and code), oldest first.
    func letters(_ o: StrictObject) throws -> [(id: Int64, subject: String, stage: String, code: String, raw: String)] {
        let id = try o.int("id")
        let stage = try o.string("stage")
        guard id != nil || stage != nil else { throw MicroService.Failure(400, "give id, or stage (and code)") }
        let (sql, values) = Self.filters([("id = ?", Self.int(id)), ("stage = ?", Self.text(stage)), ("code = ?", Self.text(try o.string("code")))])
        return try database.prepare("SELECT id, subject, stage, code, raw FROM dead_letter\(sql) ORDER BY id LIMIT ?")
            .rows(values + [.integer(try o.int("limit", 1...10_000) ?? 100)]) { ($0.int(0), $0.text(1), $0.text(2), $0.text(3), $0.text(4)) }
    }

    func replay(_ o: StrictObject) throws -> JSONValue {
        guard let republish else { throw MicroService.Failure(503, "replay is not available") }
        let letters = try self.letters(o)
        if letters.isEmpty { throw MicroService.Failure(404, "no dead letter matches") }
        var replayed: [JSONValue] = []
        for (letter, subject, _, _, raw) in letters {
            do {
                try republish(subject, Array((raw + "\n").utf8), [
                    "Nats-Msg-Id": ["replay-\(letter)-\(Int64(Date().timeIntervalSince1970 * 1000))"],
                    IncomingMessage.replayHeader: [String(letter)],
                ])
                replayed.append(.integer(letter))
            } catch {
                throw MicroService.Failure(503, "replayed \(replayed.count) of \(letters.count); letter \(letter): \(error)")
            }
        }
        return .object([("replayed", .array(replayed)), ("count", .integer(Int64(replayed.count)))])
    }
}
