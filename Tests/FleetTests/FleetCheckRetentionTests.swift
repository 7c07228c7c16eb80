import Fleet
import Foundation
import Model
import Store
import Testing

/// Issue 22 #14: fleet_health_check grew without bound; checks older than the retention go,
/// each server's newest stays.
@Suite(.timeLimit(.minutes(3))) struct FleetCheckRetentionTests {
    @Test func oldChecksArePrunedAndTheNewestOfEachServerKept() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("clusterd-fleet-prune-\(UUID().uuidString).db").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let db = try Database(path: path)
        try db.migrate(FleetSchema.migrations)
        let registry = FleetRegistry(database: db)
        let a = try registry.register("acme", try JSONValue.parse(#"{"name":"a"}"#), now: 1000, newID: "id-a")
        let b = try registry.register("acme", try JSONValue.parse(#"{"name":"b"}"#), now: 1000, newID: "id-b")
        for (server, at) in [(a, 100), (a, 200), (a, 5000), (b, 150)] {
            try db.prepare("INSERT INTO fleet_health_check (server_id, at, status) VALUES (?, ?, 'healthy')").run([.text(server.id), .integer(Int64(at))])
        }
        #expect(try registry.pruneChecks(before: 1000) == 2)
        let left = try db.prepare("SELECT server_id, at FROM fleet_health_check ORDER BY at").rows { "\($0.text(0) == a.id ? "a" : "b")@\($0.int(1))" }
        #expect(left == ["b@150", "a@5000"])
    }
}
