import Model
import Store

/// Pushed server metrics (cpu, memory, disk, network, services, users...), kept as
/// aggregates: each sample updates its 1-minute, 5-minute, 1-hour and 1-day bucket (samples,
/// sum, min, max), so the roll-ups need no batch job; retention by age per period.
extension FleetRegistry {
    /// Periods and their bucket length in seconds.
    public static let periods: [(name: String, seconds: Int64)] = [("1m", 60), ("5m", 300), ("1h", 3600), ("1d", 86_400)]
    /// How long each period's buckets are kept (seconds).
    public static let retention: [String: Int64] = ["1m": 2 * 86_400, "5m": 14 * 86_400, "1h": 90 * 86_400, "1d": 730 * 86_400]

    /// Adds samples `(metric, value, time)` of a server (caller holds a transaction or not: one is used).
    public func addMetrics(_ organization: String, _ name: String, _ samples: [(metric: String, value: Double, time: Int64)]) throws -> Bool {
        guard let server = try server(organization, name) else { return false }
        let statement = try database.prepare("""
            INSERT INTO fleet_metric (server_id, metric, period, bucket, samples, sum, min, max) VALUES (?, ?, ?, ?, 1, ?, ?, ?)
            ON CONFLICT (server_id, metric, period, bucket) DO UPDATE SET samples = samples + 1, sum = sum + excluded.sum,
                min = min(min, excluded.min), max = max(max, excluded.max)
            """)
        try database.transaction {
            for s in samples {
                for (period, seconds) in Self.periods {
                    let bucket = s.time - ((s.time % seconds) + seconds) % seconds
                    try statement.run([.text(server.id), .text(s.metric), .text(period), .integer(bucket), .real(s.value), .real(s.value), .real(s.value)])
                }
            }
        }
        return true
    }

    /// A server's aggregates of one period (all metrics, or one), oldest first.
    public func metrics(_ organization: String, _ name: String, period: String, metric: String?, from: Int64?, to: Int64?) throws -> JSONValue {
        guard let server = try server(organization, name) else { throw Failure(code: 404, description: "no server \(name) in \(organization)") }
        guard Self.retention[period] != nil else { throw Failure(code: 400, description: "period is 1m, 5m, 1h or 1d") }
        var sql = "SELECT metric, bucket, samples, sum, min, max FROM fleet_metric WHERE server_id = ? AND period = ?"
        var values: [SQLValue] = [.text(server.id), .text(period)]
        if let metric { sql += " AND metric = ?"; values.append(.text(metric)) }
        if let from { sql += " AND bucket >= ?"; values.append(.integer(from)) }
        if let to { sql += " AND bucket <= ?"; values.append(.integer(to)) }
        let rows = try database.prepare(sql + " ORDER BY metric, bucket").rows(values) { r in
            (r.text(0), JSONValue.object([("bucket", .integer(r.int(1))), ("samples", .integer(r.int(2))), ("avg", .double(r.double(3) / Double(max(1, r.int(2))))),
                                          ("min", .double(r.double(4))), ("max", .double(r.double(5)))]))
        }
        var series: [(key: String, value: JSONValue)] = []
        for (metric, point) in rows {
            if let i = series.firstIndex(where: { $0.key == metric }), case .array(var points) = series[i].value {
                points.append(point)
                series[i].value = .array(points)
            } else {
                series.append((metric, .array([point])))
            }
        }
        return .object([("server", .string(name)), ("period", .string(period)), ("metrics", .object(series))])
    }

    /// Deletes health checks made before `cutoff` (epoch seconds), each server's newest one
    /// kept; returns how many. Every check is kept for its retention, not for ever.
    @discardableResult
    public func pruneChecks(before cutoff: Int64) throws -> Int {
        try database.prepare("""
            DELETE FROM fleet_health_check WHERE at < ?
                AND id NOT IN (SELECT max(id) FROM fleet_health_check GROUP BY server_id)
            """).run([.integer(cutoff)])
        return database.changes
    }

    /// Deletes buckets older than their period's retention; returns how many.
    @discardableResult
    public func pruneMetrics(now: Int64) throws -> Int {
        var n = 0
        for (period, keep) in Self.retention {
            try database.prepare("DELETE FROM fleet_metric WHERE period = ? AND bucket < ?").run([.text(period), .integer(now - keep)])
            n += database.changes
        }
        return n
    }
}
