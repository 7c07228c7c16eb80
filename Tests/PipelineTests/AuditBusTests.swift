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

    func configuration() -> ClusterdConfig {
        var config = ClusterdConfig()
        config.nats.servers = [server.url]
        config.storage.dataDir = directory.appendingPathComponent("data").path
        config.jobs.clusterFiles = [Repository.path("config/clusters/fritz/cluster.json")]
        config.health.topology = Repository.path("config/topology.yaml")
        config.observability.listen = ""
        return config
    }

    var logger: Logger {
        var logger = Logger(label: "audit-test")
        logger.logLevel = .critical
        return logger
    }

    @Test func adminActionsAreRecordedQueryablePublishedAndExpire() async throws {
        let clock = ManualClock(Int64(Date().timeIntervalSince1970))
        let service = ClusterdService(config: configuration(), logger: logger, clock: clock)
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

    /// Each entry holds the record the action acted on as it stood before (`before`) beside the
    /// answer (the state after): a job's protection, a fleet server, a maintenance window, the
    /// running configuration; `null` where there was nothing yet.
    @Test func eachEntryHoldsTheStateBeforeAndTheStateAfter() async throws {
        let service = ClusterdService(config: configuration(), logger: logger)
        try service.start()
        defer { service.stop() }
        _ = try JetStream(client).publish(BusMessage(subject: "cc.job.event", data: Array(ServiceBusTests.start(4711).utf8)), messageID: "start-4711")
        try await eventually("job 4711 recorded") {
            (try? ask("clusterd.api.jobs.get", #"{"jobId":4711,"cluster":"fritz"}"#))?.header("Nats-Service-Error") == nil
        }
        func ok(_ subject: String, _ body: String) throws {
            let reply = try ask(subject, body, actor: "carol")
            #expect(reply.header("Nats-Service-Error") == nil && (try? JSONValue.parse(reply.data))?["ok"] != .bool(false),
                    "\(subject): \(String(decoding: reply.data, as: UTF8.self))")
        }
        try ok("clusterd.admin.jobs.protect", #"{"jobId":4711,"cluster":"fritz","by":"carol","reason":"paper"}"#)
        try ok("clusterd.admin.jobs.protect", #"{"jobId":4711,"cluster":"fritz","by":"carol","protected":false}"#)
        try ok("fleet.acme.api.register", #"{"name":"w1","apiUrl":"http://127.0.0.1:1","description":"old"}"#)
        try ok("fleet.acme.api.update", #"{"name":"w1","description":"new"}"#)
        try ok("fleet.acme.api.deregister", #"{"name":"w1"}"#)
        try ok("clusterd.admin.maintenance.create", #"{"scope":"rack","target":"r02","reason":"PDU swap"}"#)
        try ok("clusterd.admin.maintenance.end", #"{"id":1}"#)
        try ok("clusterd.admin.config.reload", "{}")

        let listed = try JSONValue.parse(try ask("clusterd.api.audit.list", #"{"actor":"carol"}"#).data)
        guard case .array(let newestFirst)? = listed["entries"] else { throw TestFailure("no entries: \(listed)") }
        let entries = Array(newestFirst.reversed())
        #expect(entries.map { "\($0["resource"]?.stringValue ?? "") \($0["action"]?.stringValue ?? "")" } == [
            "jobs protect", "jobs protect", "fleet register", "fleet update", "fleet deregister", "maintenance create", "maintenance end", "config reload",
        ])
        guard entries.count == 8 else { return }
        // Protect: unprotected before, protected after; lifting it: protected by carol before.
        #expect(entries[0]["before"]?["protected"] == .bool(false) && entries[0]["before"]?["jobId"] == .integer(4711))
        #expect(entries[0]["result"]?["protected"] == .bool(true))
        #expect(entries[1]["before"]?["protected"] == .bool(true) && entries[1]["before"]?["protectedBy"] == .string("carol")
                && entries[1]["before"]?["reason"] == .string("paper"))
        #expect(entries[1]["result"]?["protected"] == .bool(false))
        // The server: none before its registration, then the old description, then the record removed.
        #expect(entries[2]["before"] == .null && entries[2]["result"]?["server"]?["description"] == .string("old"))
        #expect(entries[3]["before"]?["description"] == .string("old") && entries[3]["result"]?["server"]?["description"] == .string("new"))
        #expect(entries[4]["before"]?["description"] == .string("new") && entries[4]["before"]?["name"] == .string("w1"))
        // The window: nothing before its creation; active and not ended before it was ended.
        #expect(entries[5]["before"] == .null)
        #expect(entries[6]["before"]?["status"] == .string("active") && entries[6]["before"]?["endedAt"] == nil)
        #expect(entries[6]["result"]?["window"]?["endedAt"] != nil)
        // The running configuration in the reply's shape.
        #expect(entries[7]["before"]?["checks"] == entries[7]["result"]?["checks"] && entries[7]["before"]?["checks"] != nil)
        #expect(entries[7]["before"]?["clusters"] == entries[7]["result"]?["clusters"])
    }
}
