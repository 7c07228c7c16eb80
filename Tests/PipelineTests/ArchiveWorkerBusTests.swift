import Bus
import BusTestSupport
import Config
import Foundation
import Model
import Store
import Testing

/// The archive worker's two threads (files written under temporary names by one, synced,
/// renamed and recorded by the other) through a real nats-server: every stopped job gets its
/// entry and one announcement, nothing temporary stays behind, and a backlog of several
/// batches left in the table is worked off at start without waiting for the minute's retry.
@Suite(.serialized, .timeLimit(.minutes(3))) final class ArchiveWorkerBusTests: BusSuite {
    typealias Collector = ServiceBusTests.Collector
    let fixture: BusFixture
    /// More than two of the worker's batches (256 jobs), so that batches overlap.
    let jobs = 700

    init() throws {
        fixture = try BusFixture("clusterd-archive")
    }

    var suite: ServiceBusTests { ServiceBusTests(fixture: fixture) }

    /// Paths under the archive whose name marks a file not yet renamed into place.
    func temporaryFiles() -> [String] {
        let root = directory.appendingPathComponent("archive").path
        return (FileManager.default.enumerator(atPath: root)?.compactMap { $0 as? String } ?? []).filter { $0.hasSuffix(".tmp") }
    }

    func meta(_ id: Int) -> String {
        directory.appendingPathComponent("archive/fritz/\(id / 1000)/\(String(format: "%03d", id % 1000))/1700000000/meta.json").path
    }

    @Test func everyStoppedJobIsArchivedAndAnnouncedOnceAndABacklogIsWorkedOffAtStart() async throws {
        let suite = suite
        let (service, publisher, outcomes, sub) = try suite.running(watching: "clusterd.result.archive.>")
        let js = try JetStream(publisher)
        for i in 1...jobs {
            _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array(ServiceBusTests.start(i).utf8)), messageID: "start-\(i)")
            _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array(ServiceBusTests.stop(i).utf8)), messageID: "stop-\(i)")
        }
        let seen = try await outcomes.wait(count: jobs, timeout: 120)
        service.stop()
        #expect(seen.count == jobs, "\(seen.count) of \(jobs) archive outcomes")
        #expect(Set(seen.map(\.subject)).count == seen.count, "a job announced twice")
        #expect(seen.allSatisfy { (try? JSONValue.parse($0.data))?["ok"] == .bool(true) }, "\(seen.first { !$0.text.contains("\"ok\":true") }?.text ?? "")")
        #expect(try suite.countJobs("SELECT count(*) FROM job WHERE monitoring_status = 3") == jobs)
        #expect((1...jobs).allSatisfy { FileManager.default.fileExists(atPath: meta($0)) })
        #expect(temporaryFiles().isEmpty, "\(temporaryFiles().prefix(5))")
        _ = sub

        // As after a crash between the commit of the stops and their entries: every job
        // pending again and its files gone. The next start finds three batches in the table.
        let db = try Database(path: directory.appendingPathComponent("clusterd.db").path)
        try db.execute("UPDATE job SET monitoring_status = 1")
        try FileManager.default.removeItem(atPath: directory.appendingPathComponent("archive/fritz/0").path)
        let again = suite.makeService()
        try again.start()
        defer { again.stop() }
        let deadline = Date().addingTimeInterval(60)
        while try suite.countJobs("SELECT count(*) FROM job WHERE monitoring_status = 3") < jobs && Date() < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(try suite.countJobs("SELECT count(*) FROM job WHERE monitoring_status = 3") == jobs)
        #expect((1...jobs).allSatisfy { FileManager.default.fileExists(atPath: meta($0)) })
        #expect(temporaryFiles().isEmpty)
    }
}
