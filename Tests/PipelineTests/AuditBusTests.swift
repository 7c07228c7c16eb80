import Bus
import BusTestSupport
import Config
import Foundation
import Logging
import Model
@testable import Pipeline
import Store
import Testing
import Threads

/// Issue 20 #3: every administrative action is recorded with who asked, what, when, the
/// request and the answer; queryable on `clusterd.api.audit.list`, published on
/// `clusterd.audit.<resource>`, kept `publish.audit_retention_days`.
@Suite(.serialized, .timeLimit(.minutes(2))) final class AuditBusTests: BusSuite {
    let fixture: BusFixture

    init() throws { fixture = try BusFixture("clusterd-audit") }

    func ask(_ subject: String, _ body: String, actor: String? = nil) throws -> BusMessage {
        try client.request(BusMessage(subject: subject, headers: actor.map { ["Clusterd-Actor": [$0]] } ?? [:], data: Array(body.utf8)),
                           timeout: .seconds(10))
    }

    @Test func adminActionsAreRecordedQueryablePublishedAndExpire() async throws {
        let clock = ManualClock(Int64(Date().timeIntervalSince1970))
        var config = ClusterdConfig()
        config.nats.servers = [server.url]
        config.storage.dataDir = directory.appendingPathComponent("data").path
        config.jobs.clusterFiles = [Repository.path("config/clusters/fritz/cluster.json")]
        config.health.topology = Repository.path("config/topology.yaml")
        config.observability.listen = ""
        var logger = Logger(label: "audit-test")
        logger.logLevel = .critical
        let service = ClusterdService(config: config, logger: logger, clock: clock)
        try service.start()
        defer { service.stop() }
        let published = ServiceBusTests.Collector()
        let sub = try client.subscribe("clusterd.audit.>") { published.add($0) }
        try client.flush()

        let created = try JSONValue.parse(try ask("clusterd.admin.maintenance.create", #"{"scope":"rack","target":"r02","reason":"PDU swap"}"#, actor: "alice").data)
        #expect(created["ok"] == .bool(true), "\(created)")
        _ = try ask("clusterd.admin.maintenance.list", "{}", actor: "alice")              // a query: not recorded
        let protect = try ask("clusterd.admin.jobs.protect", #"{"jobId":424242,"cluster":"fritz","by":"bob","reason":"keep"}"#)
        #expect(protect.header("Nats-Service-Error") != nil, "no such job: refused")
        let anonymous = try ask("clusterd.admin.maintenance.end", #"{"id":1}"#)
        #expect(anonymous.header("Nats-Service-Error-Code") == "400")
        #expect(anonymous.header("Nats-Service-Error")?.contains("Clusterd-Actor") == true)
        let fleet = try ask("fleet.acme.api.deregister", #"{"name":"nobody"}"#)
        #expect(fleet.header("Nats-Service-Error") != nil || (try? JSONValue.parse(fleet.data))?["ok"] == .bool(false))

        let listed = try JSONValue.parse(try ask("clusterd.api.audit.list", "{}").data)
        guard case .array(let entries)? = listed["entries"] else { throw TestFailure("no entries: \(listed)") }
        #expect(entries.map { "\($0["actor"]?.stringValue ?? "") \($0["resource"]?.stringValue ?? "") \($0["action"]?.stringValue ?? "") \($0["outcome"]?.stringValue ?? "")" } == [
            "organization acme fleet deregister refused",
            "unknown maintenance end refused",
            "bob jobs protect refused",
            "alice maintenance create ok",
        ])
        // The request as sent, and the answer: the window as it was created.
        let first = try #require(entries.last)
        #expect(first["request"]?["target"] == .string("r02"))
        #expect(first["result"]?["window"]?["target"] == .string("r02"))
        let alices = try JSONValue.parse(try ask("clusterd.api.audit.list", #"{"actor":"alice"}"#).data)
        #expect(alices["total"] == .integer(1))
        let maintenance = try JSONValue.parse(try ask("clusterd.api.audit.list", #"{"resource":"maintenance"}"#).data)
        #expect(maintenance["total"] == .integer(2))
        // Published as recorded, through the outbox.
        try await eventually("four audit messages") { published.messages.count == 4 }
        #expect(published.messages.map(\.subject).sorted() == ["clusterd.audit.fleet", "clusterd.audit.jobs", "clusterd.audit.maintenance", "clusterd.audit.maintenance"])
        let message = try JSONValue.parse(try #require(published.messages.first { $0.subject == "clusterd.audit.maintenance" }).data)
        #expect(message["actor"] == .string("alice") && message["id"] != nil)

        // The documented shapes (subjects/clusterd.audit.md): the message's keys, and the list request.
        let doc = try String(contentsOfFile: Repository.path("subjects/clusterd.audit.md"), encoding: .utf8)
        func keys(_ v: JSONValue?) -> [String] { if case .object(let m)? = v { return m.map(\.key) }; return [] }
        let documented = try JSONValue.parse(Array(try #require(SubjectExamplesTests.blocks(doc, info: "json message=audit").first).utf8))
        #expect(keys(message) == keys(documented) && keys(message["result"]?["window"]) == keys(documented["result"]?["window"]), "\(message)")
        let request = try #require(SubjectExamplesTests.blocks(doc, info: "json request=list").first)
        let reply = try JSONValue.parse(try ask("clusterd.api.audit.list", request).data)
        let documentedReply = try JSONValue.parse(Array(try #require(SubjectExamplesTests.blocks(doc, info: "json reply=list").first).utf8))
        #expect(keys(reply) == keys(documentedReply) && reply["total"] == .integer(1))

        // Kept a year: the scheduler's clock a year and a day on, they are gone.
        clock.advance(by: 366 * 86_400)
        let db = try Database(path: directory.appendingPathComponent("data/clusterd.db").path, readOnly: true)
        try await eventually("the retention pass") { try db.prepare("SELECT count(*) FROM audit_log").first { $0.int(0) } == 0 }
        _ = sub
    }
}
