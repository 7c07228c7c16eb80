import Bus
import BusTestSupport
import Foundation
@testable import Intake
import Logging
import Model
@testable import Pipeline
import Store
import Testing

/// Issue 16's random loops: random job and node events, valid and invalid in every way
/// ``RandomEvents`` knows, must each end applied or dead-lettered, never crash, throw or stall.
@Suite(.serialized, .timeLimit(.minutes(5))) final class RandomEventTests: BusSuite {
    let fixture: BusFixture

    init() throws {
        fixture = try BusFixture("clusterd-random")
    }

    /// The stage decisions directly (no bus): for `CLUSTERD_FUZZ_SECONDS` (3 in CI; the
    /// fuzz script runs it longer), from `CLUSTERD_FUZZ_SEED` (random by default, printed on
    /// failure). Every message gives at least one accepted or rejected entry; nothing throws.
    @Test func randomEventsThroughTheStagesAreAppliedOrDeadLettered() throws {
        let env = try TestEnvironment()
        let environment = ProcessInfo.processInfo.environment
        let seconds = Double(environment["CLUSTERD_FUZZ_SECONDS"] ?? "") ?? 3
        let seed = UInt64(environment["CLUSTERD_FUZZ_SEED"] ?? "") ?? UInt64.random(in: 1...UInt64.max)
        let now: Int64 = 1_800_000_000
        var events = RandomEvents(seed: seed, now: now)
        let deadline = Date().addingTimeInterval(seconds)
        var count = 0
        var outcomes: [String: Int] = [:]
        while Date() < deadline || count < 2000 {
            count += 1
            let (subject, body) = events.message()
            let stage: StageProcessor = subject == "cc.job.event" ? env.processor : env.nodes
            let message = IncomingMessage(subject: subject, data: body, messageID: "r-\(count)", origin: "FUZZ:\(count)", receivedAt: now)
            let disposition: MessageDisposition
            do {
                disposition = try stage.process([message])[0]
            } catch {
                Issue.record("seed \(seed), message \(count) threw \(error): \(String(decoding: body.prefix(300), as: UTF8.self))")
                return
            }
            guard case .applied(let accepted, let rejected) = disposition, accepted + rejected >= 1 else {
                Issue.record("seed \(seed), message \(count): \(disposition) for \(String(decoding: body.prefix(300), as: UTF8.self))")
                return
            }
            outcomes[rejected > 0 ? "rejected" : "accepted", default: 0] += 1
            if count % 200 == 0 {
                try env.processor.archivePending()
                try Outbox(env.processor.database).remove(upTo: Int64.max)
            }
        }
        try env.processor.archivePending()
        // Both outcomes are common: the generator is not all noise.
        #expect((outcomes["accepted"] ?? 0) > count / 20 && (outcomes["rejected"] ?? 0) > count / 20, "seed \(seed): \(outcomes)")
    }

    /// Job events decoded ahead (``StageProcessor/predecode(_:)``, on the thread that fetched
    /// them) end exactly as when decoded in the batch: the same disposition, and the same
    /// results and dead letters, byte for byte, for random valid and invalid events.
    @Test func randomJobEventsDecodedAheadEndAsWhenDecodedInTheBatch() throws {
        let inline = try TestEnvironment()
        let ahead = try TestEnvironment()
        let seed = UInt64(ProcessInfo.processInfo.environment["CLUSTERD_FUZZ_SEED"] ?? "") ?? UInt64.random(in: 1...UInt64.max)
        let now: Int64 = 1_800_000_000
        var events = RandomEvents(seed: seed, now: now)
        var decodedAhead = 0
        var small = 0
        var count = 0
        while count < 1500 {
            let (subject, body) = events.message()
            guard subject == "cc.job.event" else { continue }
            count += 1
            let message = IncomingMessage(subject: subject, data: body, messageID: "r-\(count)", origin: "FUZZ:\(count)", receivedAt: now)
            var predecoded = message
            ahead.processor.predecode(&predecoded)
            if predecoded.decoded != nil { decodedAhead += 1 }
            if body.count <= StageProcessor.maxPredecodedBytes { small += 1 }
            let expected = try inline.processor.process([message])
            let got = try ahead.processor.process([predecoded])
            let published = { (env: TestEnvironment) throws -> [String] in
                let rows = try Outbox(env.processor.database).pending(limit: 10_000)
                try Outbox(env.processor.database).remove(upTo: Int64.max)
                return rows.map { "\($0.subject) \($0.messageID) \(String(decoding: $0.payload, as: UTF8.self))" }
            }
            let want = try published(inline), have = try published(ahead)
            guard got == expected, have == want else {
                Issue.record("seed \(seed), message \(count): \(got) \(have) against \(expected) \(want) for \(String(decoding: body.prefix(300), as: UTF8.self))")
                return
            }
        }
        // The same tables after it all: the job rows and the canonical start events as stored.
        let jobs = "SELECT job_id, cluster, start_time, job_state, duration, resources, meta_data, monitoring_status FROM job ORDER BY id"
        let starts = "SELECT job, start_event FROM clusterd_job_event ORDER BY job"
        #expect(try ahead.query(jobs) == inline.query(jobs))
        #expect(try ahead.query(starts) == inline.query(starts))
        #expect(decodedAhead == small && small > count / 2)
        // A message above the bound is decoded in its batch (memory stays bounded), applied alike.
        let lines = (1...60).map { i in
            #"job,function=start_job event="{\"jobId\":\#(900_000 + i),\"cluster\":\"fritz\",\"user\":\"u\",\"project\":\"p\",\"numNodes\":1,\"startTime\":\#(now - 60),\"resources\":[{\"hostname\":\"f0101\"}],\"metaData\":{\"jobScript\":\"\#(String(repeating: "x", count: 300))\"}}""#
        }
        var large = IncomingMessage(subject: "cc.job.event", data: Array(lines.joined(separator: "\n").utf8), messageID: "large", origin: "FUZZ:large",
                                    receivedAt: now)
        #expect(large.data.count > StageProcessor.maxPredecodedBytes)
        ahead.processor.predecode(&large)
        #expect(large.decoded == nil)
        #expect(try ahead.processor.process([large]) == [.applied(accepted: 60, rejected: 0)])
    }

    /// Issue 16's "done when": 10,000 random job and node events through a real nats-server
    /// into the running service. Every one gets its result (applied or dead-lettered), the
    /// service stays up and the outbox drains.
    @Test func tenThousandRandomEventsThroughTheBusEachEndAppliedOrDeadLettered() async throws {
        let (service, config) = try ClusterdService.started(server: server.url, directory: directory.appendingPathComponent("data"))
        defer { service.stop() }
        let results = ServiceBusTests.Collector()
        let sub = try client.subscribe("clusterd.result.>") { results.add($0) }
        try client.flush()
        let js = try JetStream(client)
        let seed = UInt64.random(in: 1...UInt64.max)
        var events = RandomEvents(seed: seed, now: Int64(Date().timeIntervalSince1970))
        let total = 10_000
        for i in 1...total {
            let (subject, body) = events.message()
            _ = try js.publish(BusMessage(subject: subject, data: body), messageID: "r-\(i)")
        }
        let deadline = Date().addingTimeInterval(180)
        var answered = Set<String>()
        var ok = 0
        while Date() < deadline {
            answered = []
            ok = 0
            for m in results.messages where !m.subject.hasPrefix("clusterd.result.archive.") {
                answered.insert(String(m.subject.split(separator: ".").last ?? ""))
                if (try? JSONValue.parse(m.data))?["ok"] == .bool(true) { ok += 1 }
            }
            if answered.count >= total { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(answered.count == total, "seed \(seed): \(total - answered.count) events without a result, e.g. \((1...total).lazy.map { "r-\($0)" }.first { !answered.contains($0) } ?? "")")
        #expect(ok > 0 && ok < total, "seed \(seed): \(ok) of \(total) fully applied")
        let db = try Database(path: config.databasePath, readOnly: true)
        let drained = Date().addingTimeInterval(30)
        while ((try? db.prepare("SELECT count(*) FROM outbox").first { $0.int(0) }) ?? 1) != 0 && Date() < drained {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(try db.prepare("SELECT count(*) FROM outbox").first { $0.int(0) } == 0)
        #expect(try db.prepare("SELECT count(*) FROM outbox_parked").first { $0.int(0) } == 0)
        #expect(try db.prepare("SELECT count(*) FROM intake_attempt").first { $0.int(0) } == 0)
        _ = sub
    }
}
