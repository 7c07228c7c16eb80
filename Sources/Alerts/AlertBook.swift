import Foundation
import Health
import Model
import Store

/// Keeps every alert instance and turns health transitions into published alerts: each
/// transition gets the next sequence number of its alert and goes to the outbox in the same
/// transaction as the state change, with `Nats-Msg-Id` = fingerprint-sequence. Maintenance
/// windows silence publication (the alert is still recorded); so does a firing parent in the
/// topology — a rack-scope check's alert or one of the rack's PDUs or switches inhibits the
/// rack's other alerts, a room's cooling the room's, a chassis' controller its blades'
/// (`inhibited_by`), and they are announced
/// when it resolves while they still fire; firing alerts are re-sent.
public final class AlertBook: @unchecked Sendable {
    let database: Database
    let outbox: Outbox
    /// Alerts go to `<prefix>.<severity>.<cluster>.<entity>`.
    public let prefix: String
    /// Firing alerts are re-sent this often (seconds).
    public let resendInterval: Int64
    /// Rack → the hosts of its PDUs and switches (``Topology/rackParents``).
    public var parents: @Sendable (String) -> Set<String> = { _ in [] }
    /// Room → the hosts of its cooling (``Topology/roomParents``).
    public var roomParents: @Sendable (String) -> Set<String> = { _ in [] }
    /// Host → the hosts of its chassis' controller (``Topology/chassisParents``).
    public var chassisParents: @Sendable (String) -> Set<String> = { _ in [] }
    /// Whether a host is a chassis controller (``Topology/chassisControllers``).
    public var isChassisController: @Sendable (String) -> Bool = { _ in false }

    /// A book over a migrated database (its own connection, used by one thread at a time).
    public init(database: Database, prefix: String = "clusterd.alert", resendInterval: Int64 = 300) {
        self.database = database
        outbox = Outbox(database)
        self.prefix = prefix
        self.resendInterval = resendInterval
    }

    /// The stable identity of an alert instance: FNV-1a over its identifying labels
    /// (severity excluded, so an escalation stays the same alert), 16 hex digits.
    public static func fingerprint(_ key: AlertKey) -> String {
        ContentHash.hex("\(key.check)\u{0}\(key.cluster)\u{0}\(key.entity)\u{0}\(key.component)")
    }

    /// Records `transitions` (one transaction) and queues the publishable ones. Returns how
    /// many were queued.
    @discardableResult
    public func record(_ transitions: [HealthTransition], now: Int64) throws -> Int {
        guard !transitions.isEmpty else { return 0 }
        return try database.transaction {
            let windows = try maintenance(activeAt: now)
            // The firing parents, read once (the alert table has no index by rack or room); kept
            // up to date as this batch fires or resolves one.
            var parents = transitions.contains { $0.status == .firing } ? try firingParents() : []
            var queued = 0
            for t in transitions {
                let fp = Self.fingerprint(t.key)
                let previous = try database.prepare("SELECT sequence, announced FROM alert WHERE fingerprint = ?")
                    .first([.text(fp)]) { ($0.int(0), $0.int(1) != 0) }
                let sequence = (previous?.0 ?? 0) + 1
                let silenced = windows.contains { $0.covers(entity: t.key.entity, placement: t.placement) }
                let here = FiringAlert(fingerprint: fp, entity: t.key.entity, rack: t.placement?.rack ?? "", room: t.placement?.room ?? "",
                                       startsAt: t.startsAt)
                let inhibitor = t.status == .firing ? inhibitor(of: here, among: parents) : nil
                // Firing is published unless silenced or inhibited; a resolve only if its firing was.
                let publish = t.status == .firing ? !silenced && inhibitor == nil : previous?.1 == true
                let announced = t.status == .firing ? (publish || previous?.1 == true) : false
                try database.prepare("""
                    INSERT INTO alert (fingerprint, check_id, cluster, entity, component, rack, room, site, labels, summary, severity,
                        status, starts_at, ends_at, last_problem_at, value, flapping, sequence, silenced, announced, last_sent_at, resends, updated_at,
                        inhibited_by)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)
                    ON CONFLICT (fingerprint) DO UPDATE SET labels = excluded.labels, summary = excluded.summary, severity = excluded.severity,
                        status = excluded.status, starts_at = excluded.starts_at, ends_at = excluded.ends_at,
                        last_problem_at = excluded.last_problem_at, value = excluded.value, flapping = excluded.flapping,
                        sequence = excluded.sequence, silenced = excluded.silenced, announced = excluded.announced,
                        last_sent_at = CASE WHEN ? THEN excluded.last_sent_at ELSE alert.last_sent_at END, resends = 0,
                        rack = excluded.rack, room = excluded.room, site = excluded.site, updated_at = excluded.updated_at,
                        inhibited_by = excluded.inhibited_by
                    """).run([
                        .text(fp), .text(t.key.check), .text(t.key.cluster), .text(t.key.entity), .text(t.key.component),
                        .text(t.placement?.rack ?? ""), .text(t.placement?.room ?? ""), .text(t.placement?.site ?? ""),
                        .text(Self.labels(t).jsonText), .text(t.summary),
                        .text(t.severity.rawValue), .text(t.status.rawValue), .integer(t.startsAt), t.endsAt.map(SQLValue.integer) ?? .null,
                        .integer(t.status == .firing ? t.at : (t.endsAt ?? t.at)), t.value.map(SQLValue.real) ?? .null,
                        .integer(t.flapping ? 1 : 0), .integer(sequence), .integer(silenced ? 1 : 0), .integer(announced ? 1 : 0),
                        .integer(publish ? now : 0), .integer(now), .text(inhibitor ?? ""), .integer(publish ? 1 : 0),
                    ])
                try database.prepare("""
                    INSERT INTO alert_transition (fingerprint, sequence, status, severity, flapping, silenced, published, at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """).run([.text(fp), .integer(sequence), .text(t.status.rawValue), .text(t.severity.rawValue), .integer(t.flapping ? 1 : 0),
                              .integer(silenced ? 1 : 0), .integer(publish ? 1 : 0), .integer(t.at)])
                parents.removeAll { $0.fingerprint == fp }
                if t.status == .firing && isParent(here) { parents.append(here) }
                if publish {
                    try queue(fingerprint: fp, resend: 0, now: now)
                    queued += 1
                }
            }
            return queued
        }
    }

    /// Re-sends firing, announced, unsilenced alerts last sent `resendInterval` ago; publishes
    /// the firing of alerts whose maintenance window ended, and silences those a window now
    /// covers. Returns how many messages were queued.
    @discardableResult
    public func housekeeping(now: Int64) throws -> Int {
        try database.transaction {
            let windows = try maintenance(activeAt: now)
            var queued = 0
            let firing = try database.prepare("""
                SELECT fingerprint, entity, rack, room, site, silenced, announced, last_sent_at, resends, inhibited_by, starts_at
                FROM alert WHERE status = 'firing'
                """).rows { r in (r.text(0), r.text(1), r.text(2), r.text(3), r.text(4), r.int(5) != 0, r.int(6) != 0, r.int(7), r.int(8), r.text(9),
                                  r.int(10)) }
            let parents = firing.map { FiringAlert(fingerprint: $0.0, entity: $0.1, rack: $0.2, room: $0.3, startsAt: $0.10) }.filter(isParent)
            for (fp, entity, rack, room, site, silenced, announced, lastSent, resends, inhibitedBy, startsAt) in firing {
                let placement = rack.isEmpty && room.isEmpty ? nil : Placement(site: site, room: room, aisle: nil, rack: rack, device: "")
                let covered = windows.contains { $0.covers(entity: entity, placement: placement) }
                // Its parent fired or resolved since: marked, or freed (and announced below).
                let inhibitor = inhibitor(of: FiringAlert(fingerprint: fp, entity: entity, rack: rack, room: room, startsAt: startsAt),
                                          among: parents) ?? ""
                if inhibitor != inhibitedBy {
                    try database.prepare("UPDATE alert SET inhibited_by = ? WHERE fingerprint = ?").run([.text(inhibitor), .text(fp)])
                }
                if !inhibitor.isEmpty { continue }  // nothing goes out while its parent fires
                if !inhibitedBy.isEmpty && !announced && !covered {
                    // The parent resolved with this one still firing, never announced: announce it now.
                    try announce(fp, now: now)
                    if silenced { try database.prepare("UPDATE alert SET silenced = 0 WHERE fingerprint = ?").run([.text(fp)]) }
                    queued += 1
                    continue
                }
                if covered != silenced {
                    if covered {
                        try database.prepare("UPDATE alert SET silenced = 1 WHERE fingerprint = ?").run([.text(fp)])
                    } else {
                        // The window ended with the alert still firing: announce it now, as a new transition.
                        try database.prepare("UPDATE alert SET silenced = 0 WHERE fingerprint = ?").run([.text(fp)])
                        try announce(fp, now: now)
                        queued += 1
                    }
                } else if !silenced, announced, now - lastSent >= resendInterval {
                    try database.prepare("UPDATE alert SET resends = resends + 1, last_sent_at = ? WHERE fingerprint = ?").run([.integer(now), .text(fp)])
                    try queue(fingerprint: fp, resend: Int(resends) + 1, now: now)
                    queued += 1
                }
            }
            return queued
        }
    }

    /// Publishes a firing alert consumers have not heard of (or not since a window or parent
    /// held it back) as a new transition.
    private func announce(_ fp: String, now: Int64) throws {
        try database.prepare("""
            UPDATE alert SET announced = 1, sequence = sequence + 1, last_sent_at = ?, resends = 0, updated_at = ? WHERE fingerprint = ?
            """).run([.integer(now), .integer(now), .text(fp)])
        try database.prepare("""
            INSERT INTO alert_transition (fingerprint, sequence, status, severity, flapping, silenced, published, at)
            SELECT fingerprint, sequence, status, severity, flapping, 0, 1, ? FROM alert WHERE fingerprint = ?
            """).run([.integer(now), .text(fp)])
        try queue(fingerprint: fp, resend: 0, now: now)
    }

    /// A firing alert where the topology places it, as far as inhibition is concerned.
    struct FiringAlert {
        var fingerprint: String
        var entity: String
        var rack: String
        var room: String
        var startsAt: Int64
    }

    /// Whether `alert` is a parent: a rack-scope check's alert (its entity is its rack), one of a
    /// rack's PDUs' or switches', one of a room's cooling's, or a chassis controller's.
    func isParent(_ alert: FiringAlert) -> Bool {
        (!alert.rack.isEmpty && (alert.entity == alert.rack || parents(alert.rack).contains(alert.entity)))
            || (!alert.room.isEmpty && roomParents(alert.room).contains(alert.entity))
            || isChassisController(alert.entity)
    }

    /// The firing parents, from the alert table.
    func firingParents() throws -> [FiringAlert] {
        try database.prepare("SELECT fingerprint, entity, rack, room, starts_at FROM alert WHERE status = 'firing'").rows { r in
            FiringAlert(fingerprint: r.text(0), entity: r.text(1), rack: r.text(2), room: r.text(3), startsAt: r.int(4))
        }.filter(isParent)
    }

    /// The parent among `firing` (the oldest of the highest level) that inhibits `alert` — its
    /// room's cooling's, its rack's own (a rack-scope check) or one of its PDUs' or switches',
    /// its chassis controller's — or nil. A parent is never inhibited by its own level.
    func inhibitor(of alert: FiringAlert, among firing: [FiringAlert]) -> String? {
        func oldest(_ matches: (FiringAlert) -> Bool) -> String? {
            firing.filter { $0.fingerprint != alert.fingerprint && matches($0) }
                .min { ($0.startsAt, $0.fingerprint) < ($1.startsAt, $1.fingerprint) }?.fingerprint
        }
        let cooling = alert.room.isEmpty ? [] : roomParents(alert.room)
        if cooling.contains(alert.entity) { return nil }
        if let found = oldest({ $0.room == alert.room && cooling.contains($0.entity) }) { return found }
        guard !alert.rack.isEmpty, alert.entity != alert.rack else { return nil }
        let parents = parents(alert.rack)
        if parents.contains(alert.entity) { return nil }
        if let found = oldest({ $0.rack == alert.rack && ($0.entity == alert.rack || parents.contains($0.entity)) }) { return found }
        let controllers = chassisParents(alert.entity)
        return controllers.isEmpty ? nil : oldest { controllers.contains($0.entity) }
    }

    /// Deletes transitions older than `cutoff` and alerts resolved before it (a firing alert
    /// is never deleted). Returns how many rows went.
    @discardableResult
    public func prune(before cutoff: Int64) throws -> Int {
        try database.transaction {
            try database.prepare("DELETE FROM alert_transition WHERE at < ?").run([.integer(cutoff)])
            var n = database.changes
            try database.prepare("DELETE FROM alert WHERE status = 'resolved' AND ends_at < ?").run([.integer(cutoff)])
            n += database.changes
            return n
        }
    }

    /// Firing alerts, for the engine after a restart.
    public func restore() throws -> [RestoredAlert] {
        try database.prepare("""
            SELECT check_id, cluster, entity, component, severity, starts_at, last_problem_at, flapping FROM alert WHERE status = 'firing'
            """).rows { r in
            RestoredAlert(key: AlertKey(check: r.text(0), cluster: r.text(1), entity: r.text(2), component: r.text(3)),
                          severity: Severity(rawValue: r.text(4)) ?? .unknown, startsAt: r.int(5), lastProblemAt: r.int(6), flapping: r.int(7) != 0)
        }
    }

    /// The published JSON of an alert as stored.
    public func json(fingerprint: String, resend: Int, now: Int64) throws -> (subject: String, payload: JSONValue)? {
        try database.prepare("""
            SELECT labels, summary, severity, status, starts_at, ends_at, value, flapping, sequence, cluster, entity, check_id, component
            FROM alert WHERE fingerprint = ?
            """).first([.text(fingerprint)]) { r -> (String, JSONValue) in
            let severity = Severity(rawValue: r.text(2)) ?? .unknown
            let status = r.text(3)
            var annotations = JSONObjectBuilder()
            annotations.add("summary", r.text(1))
            let component = r.text(12).isEmpty ? "" : " component \(r.text(12))"
            let value = r.isNull(6) ? "" : ", value \(JSONValue.double(r.double(6)).jsonText)"
            annotations.add("description", "check \(r.text(11)) on \(r.text(10))\(component) is \(severity.rawValue)\(value)")
            var b = JSONObjectBuilder()
            b.add("status", status)
            b.add("labels", (try? JSONValue.parse(Array(r.text(0).utf8))) ?? .object([]))
            b.add("annotations", annotations.value)
            b.add("startsAt", Self.rfc3339(r.int(4)))
            // Firing: valid for four resend intervals, as Prometheus does, so Alertmanager
            // does not resolve it between re-sends.
            b.add("endsAt", Self.rfc3339(status == "firing" ? now + 4 * resendInterval : r.int(5)))
            b.add("fingerprint", fingerprint)
            b.add("sequence", r.int(8))
            b.add("flapping", r.int(7) != 0)
            b.add("resend", resend)
            if !r.isNull(6) { b.add("value", .double(r.double(6))) }
            let subject = "\(prefix).\(severity.token).\(Self.token(r.text(9))).\(Self.token(r.text(10)))"
            return (subject, b.value)
        }
    }

    private func queue(fingerprint fp: String, resend: Int, now: Int64) throws {
        guard let (subject, payload) = try json(fingerprint: fp, resend: resend, now: now) else { return }
        guard case .integer(let sequence)? = payload["sequence"] else { return }
        let id = resend == 0 ? "\(fp)-\(sequence)" : "\(fp)-\(sequence)-resend-\(resend)"
        try outbox.append(OutboxMessage(subject: subject, messageID: id, payload: payload.jsonBytes))
    }

    static func labels(_ t: HealthTransition) -> JSONValue {
        let key = t.key, scope = t.scope, placement = t.placement, severity = t.severity
        var b = JSONObjectBuilder()
        b.add("alertname", key.check)
        if !t.labels.isEmpty {
            for (k, v) in t.labels { b.add(k, v) }
            b.add("severity", severity.token)
            return b.value
        }
        if !key.cluster.isEmpty { b.add("cluster", key.cluster) }
        if scope == .rack { b.add("rack", key.entity) } else { b.add("hostname", key.entity) }
        if !key.component.isEmpty { b.add("component", key.component) }
        if let p = placement {
            if scope != .rack { b.add("rack", p.rack) }
            b.add("room", p.room)
            b.add("site", p.site)
        }
        b.add("severity", severity.token)
        return b.value
    }

    /// A subject token: `.`, `*`, `>` and whitespace become `_`; empty becomes `_`.
    static func token(_ s: String) -> String {
        s.isEmpty ? "_" : String(s.map { $0 == "." || $0 == "*" || $0 == ">" || $0.isWhitespace ? "_" : $0 })
    }

    /// Epoch seconds as RFC 3339 UTC.
    public static func rfc3339(_ t: Int64) -> String {
        var time = time_t(t)
        var parts = tm()
        gmtime_r(&time, &parts)
        func pad(_ v: Int32, _ w: Int = 2) -> String { let s = String(v); return String(repeating: "0", count: max(0, w - s.count)) + s }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1))-\(pad(parts.tm_mday))T\(pad(parts.tm_hour)):\(pad(parts.tm_min)):\(pad(parts.tm_sec))Z"
    }

    // MARK: maintenance

    /// Windows in force at `now` (every window not ended when nil).
    public func maintenance(activeAt now: Int64?) throws -> [MaintenanceWindow] {
        let all = try database.prepare("""
            SELECT id, scope, target, reason, created_by, created_at, starts_at, ends_at, ended_at FROM maintenance ORDER BY id
            """).rows { r in
            MaintenanceWindow(id: r.int(0), scope: MaintenanceWindow.Scope(rawValue: r.text(1)) ?? .node, target: r.text(2), reason: r.text(3),
                              createdBy: r.text(4), createdAt: r.int(5), startsAt: r.int(6), endsAt: r.isNull(7) ? nil : r.int(7),
                              endedAt: r.isNull(8) ? nil : r.int(8))
        }
        guard let now else { return all }
        return all.filter { $0.isActive(at: now) }
    }

    /// Stores a new window; returns it with its id.
    public func createMaintenance(_ window: MaintenanceWindow) throws -> MaintenanceWindow {
        try database.prepare("""
            INSERT INTO maintenance (scope, target, reason, created_by, created_at, starts_at, ends_at) VALUES (?, ?, ?, ?, ?, ?, ?)
            """).run([.text(window.scope.rawValue), .text(window.target), .text(window.reason), .text(window.createdBy),
                      .integer(window.createdAt), .integer(window.startsAt), window.endsAt.map(SQLValue.integer) ?? .null])
        var stored = window
        stored.id = database.lastInsertRowID
        return stored
    }

    /// Ends window `id` at `now`; nil when there is no such window.
    public func endMaintenance(id: Int64, now: Int64) throws -> MaintenanceWindow? {
        try database.prepare("UPDATE maintenance SET ended_at = ? WHERE id = ? AND ended_at IS NULL").run([.integer(now), .integer(id)])
        return try maintenance(activeAt: nil).first { $0.id == id }
    }
}
