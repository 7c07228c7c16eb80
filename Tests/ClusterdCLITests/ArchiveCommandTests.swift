import Foundation
import Testing

/// `clusterd archive export|import`: round trips keep every byte.
@Suite(.timeLimit(.minutes(3))) struct ArchiveCommandTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("clusterd-archive-\(UUID().uuidString)")

    func write(_ bytes: [UInt8], _ path: String, in root: URL) throws {
        let url = root.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(bytes).write(to: url)
    }

    /// Every file below `root` with its bytes.
    func tree(_ root: URL) throws -> [String: Data] {
        var out: [String: Data] = [:]
        guard let walker = FileManager.default.enumerator(atPath: root.path) else { return [:] }
        for case let path as String in walker {
            var dir: ObjCBool = false
            if FileManager.default.fileExists(atPath: root.appendingPathComponent(path).path, isDirectory: &dir), !dir.boolValue {
                out[path] = try Data(contentsOf: root.appendingPathComponent(path))
            }
        }
        return out
    }

    /// A small archive tree: two clusters, 120 jobs with meta.json and data.json.gz, one with
    /// meta.json alone, and a temporary file an interrupted write left (never exported).
    func makeSource() throws -> (URL, [String: Data]) {
        let source = directory.appendingPathComponent("source")
        try write(Array("3\n".utf8), "version.txt", in: source)
        try write(Array(#"{"name":"fritz"}"#.utf8), "fritz/cluster.json", in: source)
        try write(Array(#"{"name":"alex"}"#.utf8), "alex/cluster.json", in: source)
        for job in 0..<120 {
            let dir = "fritz/\(1000 + job / 1000)/\(String(format: "%03d", job % 1000))/17180\(job)"
            try write(Array("{\"jobId\":\(job)}\n".utf8), "\(dir)/meta.json", in: source)
            try write((0..<3000).map { UInt8(($0 * 7 + job) % 256) }, "\(dir)/data.json.gz", in: source)
        }
        try write(Array("{\"jobId\":1}\n".utf8), "alex/0/001/1718000000/meta.json", in: source)
        try write(Array("half".utf8), "fritz/1000/000/171800/.meta.json.123.tmp", in: source)   // an interrupted write: not exported
        return (source, try tree(source).filter { !$0.key.hasSuffix(".tmp") })
    }

    @Test func exportImportRoundTripsAreByteIdentical() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let (source, original) = try makeSource()
        #expect(original.count == 3 + 240 + 1)

        let lines = directory.appendingPathComponent("export.jsonl").path
        let out = try CLIRunner.run(["archive", "export", "--archive", source.path, "--to", lines, "--quiet"])
        #expect(out.status == 0, "\(out.stderr)")
        let imported = directory.appendingPathComponent("imported")
        let back = try CLIRunner.run(["archive", "import", "--from", lines, "--archive", imported.path])
        #expect(back.status == 0 && back.stdout.contains("imported 244 files"), "\(back.stdout)\(back.stderr)")
        #expect(try tree(imported) == original)

        // Directory to directory (a ClusterCockpit archive), one cluster only.
        let cc = directory.appendingPathComponent("cc-archive")
        let dir = try CLIRunner.run(["archive", "export", "--archive", imported.path, "--to", cc.path, "--cluster", "alex"])
        #expect(dir.status == 0 && dir.stdout.contains("exported 1 jobs"), "\(dir.stdout)")
        #expect(try tree(cc).keys.sorted() == ["alex/0/001/1718000000/meta.json", "alex/cluster.json", "version.txt"])

        // A conflicting file is refused unless --overwrite; identical ones are skipped.
        try write(Array("{\"jobId\":999}\n".utf8), "alex/0/001/1718000000/meta.json", in: cc)
        let conflict = try CLIRunner.run(["archive", "import", "--from", cc.path, "--archive", imported.path, "--quiet"])
        #expect(conflict.status != 0 && conflict.stderr.contains("exists with other content"))
        #expect(try CLIRunner.run(["archive", "import", "--from", cc.path, "--archive", imported.path, "--overwrite", "--quiet"]).status == 0)

        // An export line cannot write outside the archive.
        let evil = directory.appendingPathComponent("evil.jsonl")
        try Data("{\"path\":\"../escape.txt\",\"base64\":\"eA==\"}\n".utf8).write(to: evil)
        let refused = try CLIRunner.run(["archive", "import", "--from", evil.path, "--archive", imported.path])
        #expect(refused.status != 0 && refused.stderr.contains("leaves the archive"))
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("escape.txt").path))
    }

    /// The SQLite archive (`storage.archive_kind: sqlite`) to and from the tree: a tree
    /// imported into it and exported again, as a tree or JSON lines, is the same bytes.
    @Test func theSQLiteArchiveRoundTripsToTheTree() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let (source, original) = try makeSource()
        let db = directory.appendingPathComponent("job-archive.db").path
        let into = try CLIRunner.run(["archive", "import", "--from", source.path, "--archive-database", db])
        #expect(into.status == 0 && into.stdout.contains("imported 121 jobs, 244 files"), "\(into.stdout)\(into.stderr)")
        let back = directory.appendingPathComponent("back")
        let out = try CLIRunner.run(["archive", "export", "--archive-database", db, "--to", back.path, "--quiet"])
        #expect(out.status == 0, "\(out.stderr)")
        #expect(try tree(back) == original)

        // Through JSON lines into a second SQLite archive, one cluster only, and out again.
        let lines = directory.appendingPathComponent("alex.jsonl").path
        #expect(try CLIRunner.run(["archive", "export", "--archive-database", db, "--to", lines, "--cluster", "alex", "--quiet"]).status == 0)
        let second = directory.appendingPathComponent("second.db").path
        #expect(try CLIRunner.run(["archive", "import", "--from", lines, "--archive-database", second, "--quiet"]).status == 0)
        let alex = directory.appendingPathComponent("alex")
        #expect(try CLIRunner.run(["archive", "export", "--archive-database", second, "--to", alex.path, "--quiet"]).status == 0)
        #expect(try tree(alex) == original.filter { $0.key == "version.txt" || $0.key.hasPrefix("alex/") })

        // Other content is refused unless --overwrite; a file that is no archive's, always.
        try write(Array("{\"jobId\":999}\n".utf8), "alex/0/001/1718000000/meta.json", in: alex)
        let conflict = try CLIRunner.run(["archive", "import", "--from", alex.path, "--archive-database", db, "--quiet"])
        #expect(conflict.status != 0 && conflict.stderr.contains("alex/0/001/1718000000/meta.json exists with other content"), "\(conflict.stderr)")
        #expect(try CLIRunner.run(["archive", "import", "--from", alex.path, "--archive-database", db, "--overwrite", "--quiet"]).status == 0)
        try write(Array("x".utf8), "alex/notes.txt", in: alex)
        let stray = try CLIRunner.run(["archive", "import", "--from", alex.path, "--archive-database", db, "--quiet"])
        #expect(stray.status != 0 && stray.stderr.contains("alex/notes.txt is not a job-archive file"), "\(stray.stderr)")
        let missing = try CLIRunner.run(["archive", "export", "--archive-database", directory.appendingPathComponent("none.db").path, "--to", lines])
        #expect(missing.status != 0 && missing.stderr.contains("no such archive"))
    }
}
