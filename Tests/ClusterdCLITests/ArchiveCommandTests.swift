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

    @Test func exportImportRoundTripsAreByteIdentical() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
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
        let original = try tree(source).filter { !$0.key.hasSuffix(".tmp") }
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
}
