import Foundation
import Testing

/// Issue 17's promises, checked on the source so a change that breaks them fails here:
/// one read-write connection, everything published through the outbox.
@Suite(.timeLimit(.minutes(1))) struct ArchitectureTests {
    /// Every Swift file under `Sources/<module>` (the executable and the bus wrapper aside:
    /// the CLI's commands are clients, `Bus` is the wrapper the outbox publishes through).
    static func serviceSources() throws -> [(path: String, text: String)] {
        let root = Repository.path("Sources")
        var files: [(String, String)] = []
        for module in try FileManager.default.contentsOfDirectory(atPath: root).sorted()
        where !["clusterd", "clusterd-fuzz", "Bus", "BusTestSupport", "NATSServerProcess"].contains(module) {
            let dir = "\(root)/\(module)"
            for file in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where file.hasSuffix(".swift") {
                files.append(("\(module)/\(file)", try String(contentsOfFile: "\(dir)/\(file)", encoding: .utf8)))
            }
        }
        return files
    }

    @Test func theServiceOpensOneReadWriteConnection() throws {
        let sources = try Self.serviceSources()
        let writers = sources.filter { $0.text.contains("DatabaseWriter(path:") }.map(\.path)
        #expect(writers == ["Pipeline/ClusterdService.swift"])
        let opened = sources.flatMap { file in
            file.text.components(separatedBy: "\n").filter { $0.contains("Database(path:") && !$0.contains("readOnly: true") && !$0.contains("///") }
                .map { "\(file.path): \($0.trimmingCharacters(in: .whitespaces))" }
        }
        // The writer's own connection is the only read-write one that writes rows. The log
        // checkpointer's copies committed pages into the database file and runs nothing else.
        // The SQLite archive's is to another file, the job archive (`storage.archive_kind: sqlite`).
        #expect(opened.sorted() == ["Store/DatabaseWriter.swift: database = try Database(path: path, busyTimeoutMilliseconds: busyTimeoutMilliseconds)",
                           "Store/WALCheckpointer.swift: database = try Database(path: path)",
                           "Archive/ArchiveDatabase.swift: let database = try Database(path: path, readOnly: readOnly)"].sorted(), "\(opened)")
        let checkpointer = sources.first { $0.path == "Store/WALCheckpointer.swift" }?.text ?? ""
        let statements = checkpointer.components(separatedBy: "\n").filter { $0.contains("database.") }.map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(statements == [#"try database.execute("PRAGMA wal_checkpoint(PASSIVE)")"#], "\(statements)")
    }

    /// Publications go through `OutboxPublisher`; the one other bus call is the fleet's
    /// operation fan-out, a request that waits for each server's answer and records it.
    @Test func nothingIsPublishedAroundTheOutbox() throws {
        let calls = try Self.serviceSources().flatMap { file in
            file.text.components(separatedBy: "\n").filter { $0.contains(".publish(") || $0.contains(".request(") || $0.contains("kv.put(") }
                .filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("//") }
                .map { "\(file.path): \($0.trimmingCharacters(in: .whitespaces).prefix(40))" }
        }
        #expect(calls == [
            "Intake/OutboxPublisher.swift: try connection.publish(BusMessage(subjec",
            "Integrations/FleetService+Poller.swift: let reply = try connection.request(BusMe",
        ], "\(calls)")
    }

    /// ARCHITECTURE.md's module table names every target of Package.swift (tests aside), and
    /// nothing else.
    @Test func theModuleMapMatchesThePackage() throws {
        let package = try String(contentsOfFile: Repository.path("Package.swift"), encoding: .utf8)
        var targets = Set<String>()
        for line in package.components(separatedBy: "\n") where line.contains(".target(") || line.contains(".executableTarget(")
            || line.contains(".systemLibrary(") || line.trimmingCharacters(in: .whitespaces).hasPrefix("name: \"") {
            if let r = line.range(of: #"name: "([^"]+)""#, options: .regularExpression) {
                targets.insert(String(line[r].dropFirst(7).dropLast()))
            }
        }
        targets = targets.filter { !$0.hasSuffix("Tests") && $0 != "clusterd-package" }
        let text = try String(contentsOfFile: Repository.path("ARCHITECTURE.md"), encoding: .utf8)
        let section = try #require(text.components(separatedBy: "\n## ").first { $0.hasPrefix("Modules") })
        var listed = Set<String>()
        for line in section.components(separatedBy: "\n") where line.hasPrefix("| `") {
            let first = line.split(separator: "|").first ?? ""
            for m in first.matches(of: /`([A-Za-z-]+)`/) { listed.insert(String(m.1)) }
        }
        #expect(targets.subtracting(listed).isEmpty, "not in ARCHITECTURE.md: \(targets.subtracting(listed).sorted())")
        #expect(listed.subtracting(targets).isEmpty, "not in Package.swift: \(listed.subtracting(targets).sorted())")
    }
}
