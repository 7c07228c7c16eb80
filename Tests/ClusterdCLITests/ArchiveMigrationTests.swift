import Bus
import BusTestSupport
import Foundation
import Store
import Testing

/// README's way from the tree to the SQLite archive, as an operator runs it: `clusterd run`
/// with the tree, stopped; `clusterd archive import --archive-database`; `archive_kind:
/// sqlite` in the configuration; `clusterd run` again. Every job's entry is then a row — the
/// imported ones byte for byte the tree's files — and new jobs land there too.
@Suite(.serialized, .timeLimit(.minutes(3))) final class ArchiveMigrationTests: BusSuite {
    let fixture: BusFixture

    init() throws {
        fixture = try BusFixture("clusterd-migration")
        try CLIRunner.installFritz(into: directory)
    }

    func run(archiveKind: String) throws -> Process {
        let config = directory.appendingPathComponent("clusterd.yaml")
        try "storage:\n  data_dir: \(directory.path)\n  archive_kind: \(archiveKind)\n".write(to: config, atomically: true, encoding: .utf8)
        return try CLIRunner.launch(["run", "--config", config.path, "--listen", "", "--nats-url", server.url],
                                    log: directory.appendingPathComponent("clusterd.log"))
    }

    func archived() -> Int64 {
        guard let db = try? Database(path: directory.appendingPathComponent("clusterd.db").path, readOnly: true) else { return 0 }
        return (try? db.prepare("SELECT count(*) FROM job WHERE monitoring_status = 3").first { $0.int(0) }) ?? 0
    }

    func publish(_ ids: ClosedRange<Int>) throws {
        let js = try JetStream(client)
        for id in ids {
            let body = RunCrashTests.start(id) + "\n" + RunCrashTests.stop(id)
            _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array(body.utf8)), messageID: "migration-\(id)", retries: 100)
        }
    }

    @Test func aTreeArchiveMovesIntoTheSQLiteArchiveAsREADMESays() async throws {
        var clusterd = try run(archiveKind: "file")
        try publish(1...40)
        try await eventually("40 jobs archived as files") { archived() == 40 }
        clusterd.terminate()
        clusterd.waitUntilExit()

        let database = directory.appendingPathComponent("job-archive.db").path
        let imported = try CLIRunner.run(["archive", "import", "--from", directory.appendingPathComponent("archive").path,
                                          "--archive-database", database, "--quiet"])
        #expect(imported.status == 0, "\(imported.stderr)")

        clusterd = try run(archiveKind: "sqlite")
        defer { clusterd.terminate(); clusterd.waitUntilExit() }
        try publish(41...60)
        try await eventually("60 jobs archived") { archived() == 60 }
        let archive = try Database(path: database, readOnly: true)
        #expect(try archive.prepare("SELECT count(*) FROM jobs WHERE cluster = 'fritz'").first { $0.int(0) } == 60)
        for id in [1, 40] {
            let file = directory.appendingPathComponent("archive/fritz/0/\(String(format: "%03d", id))/\(1_700_000_000 + id)/meta.json")
            let row = try archive.prepare("SELECT meta_json FROM jobs WHERE job_id = ?").first([.integer(Int64(id))]) { $0.blob(0) }
            #expect(row == Array(try Data(contentsOf: file)), "job \(id)")
        }
        // The jobs after the switch have no directory.
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("archive/fritz/0/041").path))
    }
}
