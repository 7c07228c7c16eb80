import Foundation

/// Moves a job archive (v3 layout) between a directory tree and a single JSON-lines file,
/// byte for byte: every file of every job, plus `version.txt` and each `cluster.json`.
/// A JSON-lines file holds one object per file: `{"path": "<relative path>", "base64": "..."}`.
public enum ArchiveTransfer {
    /// Why a transfer stopped.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// Relative paths of every file of the archive at `root` (optionally one cluster), sorted:
    /// version.txt, cluster.json files, then job files.
    public static func files(in root: String, cluster: String? = nil) throws -> [String] {
        guard let walker = FileManager.default.enumerator(atPath: root) else { throw Failure(description: "\(root): not a directory") }
        var out: [String] = []
        while let path = walker.nextObject() as? String {
            let name = (path as NSString).lastPathComponent
            if name.hasPrefix(".") { continue }   // temporary files of an interrupted write
            var isDirectory: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: "\(root)/\(path)", isDirectory: &isDirectory)
            if isDirectory.boolValue { continue }
            if let cluster, path != "version.txt", !path.hasPrefix(cluster + "/") { continue }
            out.append(path)
        }
        return out.sorted { (rank($0), $0) < (rank($1), $1) }
    }

    static func rank(_ path: String) -> Int { path == "version.txt" ? 0 : path.hasSuffix("/cluster.json") && path.split(separator: "/").count == 2 ? 1 : 2 }

    /// The job directories among `paths` (`<cluster>/<l1>/<l2>/<start>`), for progress counts.
    public static func jobs(_ paths: [String]) -> Int {
        Set(paths.filter { $0.split(separator: "/").count == 5 }.map { $0.split(separator: "/").prefix(4).joined(separator: "/") }).count
    }

    /// Copies `paths` from `source` to `target` (another archive root), keeping every byte;
    /// an existing file with other content is a conflict unless `overwrite`. `progress` gets
    /// (done, total) after each file.
    public static func copy(_ paths: [String], from source: String, to target: String, overwrite: Bool,
                            progress: (Int, Int) -> Void = { _, _ in }) throws {
        for (i, path) in paths.enumerated() {
            guard let data = FileManager.default.contents(atPath: "\(source)/\(path)") else { throw Failure(description: "cannot read \(source)/\(path)") }
            try put(Array(data), at: "\(target)/\(path)", overwrite: overwrite)
            progress(i + 1, paths.count)
        }
    }

    /// Writes `paths` of `source` as one JSON-lines file.
    public static func exportLines(_ paths: [String], from source: String, to file: String, progress: (Int, Int) -> Void = { _, _ in }) throws {
        guard FileManager.default.createFile(atPath: file, contents: nil), let out = FileHandle(forWritingAtPath: file) else {
            throw Failure(description: "cannot create \(file)")
        }
        defer { try? out.close() }
        for (i, path) in paths.enumerated() {
            guard let data = FileManager.default.contents(atPath: "\(source)/\(path)") else { throw Failure(description: "cannot read \(source)/\(path)") }
            try out.write(contentsOf: Data(line(path, data).utf8))
            progress(i + 1, paths.count)
        }
    }

    /// Reads a JSON-lines export into the archive at `target`.
    public static func importLines(from file: String, to target: String, overwrite: Bool, progress: (Int, Int) -> Void = { _, _ in }) throws -> Int {
        try forEachLine(of: file, progress: progress) { path, bytes in try put(bytes, at: "\(target)/\(path)", overwrite: overwrite) }
    }

    /// Hands `body` each file of a source — a JSON-lines export (its name ends in `.jsonl`) or
    /// an archive directory — with its relative path and bytes; returns how many.
    static func forEachFile(in source: String, progress: (Int, Int) -> Void, _ body: (String, [UInt8]) throws -> Void) throws -> Int {
        if source.hasSuffix(".jsonl") { return try forEachLine(of: source, progress: progress, body) }
        let paths = try files(in: source)
        for (i, path) in paths.enumerated() {
            guard let data = FileManager.default.contents(atPath: "\(source)/\(path)") else { throw Failure(description: "cannot read \(source)/\(path)") }
            try body(path, Array(data))
            progress(i + 1, paths.count)
        }
        return paths.count
    }

    /// The same for the lines of a JSON-lines export.
    static func forEachLine(of file: String, progress: (Int, Int) -> Void, _ body: (String, [UInt8]) throws -> Void) throws -> Int {
        guard let data = FileManager.default.contents(atPath: file) else { throw Failure(description: "cannot read \(file)") }
        let lines = data.split(separator: 10)
        for (i, text) in lines.enumerated() {
            let (path, bytes) = try parse(line: text, of: file, number: i + 1)
            try body(path, bytes)
            progress(i + 1, lines.count)
        }
        return lines.count
    }

    /// One file as a line of a JSON-lines export.
    static func line(_ path: String, _ data: Data) -> String {
        "{\"path\":\"\(path)\",\"base64\":\"\(data.base64EncodedString())\"}\n"
    }

    /// The file a line of a JSON-lines export holds; refuses a path that leaves the archive.
    static func parse(line: some DataProtocol, of file: String, number: Int) throws -> (path: String, bytes: [UInt8]) {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: String], let path = object["path"],
              let encoded = object["base64"], let bytes = Data(base64Encoded: encoded) else {
            throw Failure(description: "\(file):\(number): not an archive line {\"path\", \"base64\"}")
        }
        guard !path.hasPrefix("/"), !path.split(separator: "/").contains("..") else {
            throw Failure(description: "\(file):\(number): path \(path) leaves the archive")
        }
        return (path, Array(bytes))
    }

    /// Writes one file atomically, refusing to change an existing different one unless `overwrite`.
    static func put(_ bytes: [UInt8], at path: String, overwrite: Bool) throws {
        if let existing = FileManager.default.contents(atPath: path) {
            if Array(existing) == bytes { return }
            if !overwrite { throw Failure(description: "\(path) exists with other content (use --overwrite to replace it)") }
        }
        do { try ArchiveWriter.atomicWrite(bytes, to: path) } catch { throw Failure(description: error.description) }
    }
}
