import Foundation

/// The SQLite archive (`storage.archive_kind: sqlite`) to and from the tree it stands for:
/// each row is the job's directory with its meta.json and data.json (or data.json.gz), the
/// `clusters` table the clusters' cluster.json, and `version.txt` is 3. So an archive moves
/// between the two kinds, or to a ClusterCockpit that reads the tree, byte for byte.
extension ArchiveTransfer {
    /// Writes the SQLite archive (one cluster when given) as a tree under `target`, or as a
    /// JSON-lines file when it ends in `.jsonl`; an existing tree file with other content is a
    /// conflict unless `overwrite`. Returns how many jobs and files.
    public static func export(_ database: ArchiveDatabase, cluster: String?, to target: String, overwrite: Bool,
                              progress: (Int, Int) -> Void = { _, _ in }) throws -> (jobs: Int, files: Int) {
        let clusters = try database.clusters().filter { cluster == nil || $0.name == cluster }
        let (jobs, jobFiles) = try database.count(cluster: cluster)
        let total = 1 + clusters.count + jobFiles
        var lines: FileHandle?
        if target.hasSuffix(".jsonl") {
            guard FileManager.default.createFile(atPath: target, contents: nil), let out = FileHandle(forWritingAtPath: target) else {
                throw Failure(description: "cannot create \(target)")
            }
            lines = out
        }
        defer { try? lines?.close() }
        var done = 0
        func emit(_ path: String, _ bytes: [UInt8]) throws {
            if let lines {
                try lines.write(contentsOf: Data(line(path, Data(bytes)).utf8))
            } else {
                try put(bytes, at: "\(target)/\(path)", overwrite: overwrite)
            }
            done += 1
            progress(done, total)
        }
        try emit("version.txt", Array("3\n".utf8))
        for c in clusters { try emit("\(c.name)/cluster.json", c.document) }
        var after: Int64 = 0
        while true {
            let page = try database.rows(cluster: cluster, after: after, limit: 500)
            guard let last = page.last else { break }
            for (_, row) in page {
                let directory = ArchiveWriter.relativeDirectory(cluster: row.cluster, jobId: row.jobId, startTime: row.startTime)
                try emit("\(directory)/meta.json", row.meta)
                if let data = row.data { try emit("\(directory)/\(row.compressed ? "data.json.gz" : "data.json")", data) }
            }
            after = last.id
        }
        return (jobs, done)
    }

    /// Reads a tree (a directory) or a JSON-lines export into the SQLite archive: its
    /// cluster.json files into `clusters`, each job's files into its row. A stored entry or
    /// cluster.json with other content is a conflict unless `overwrite`. Returns how many jobs
    /// and files.
    public static func importFiles(from source: String, into database: ArchiveDatabase, overwrite: Bool,
                                   progress: (Int, Int) -> Void = { _, _ in }) throws -> (jobs: Int, files: Int) {
        let now = Int64(Date().timeIntervalSince1970)
        var pending: [ArchiveWriter.JobKey: ArchiveDatabase.Row] = [:], jobs = Set<ArchiveWriter.JobKey>()
        let stored = Dictionary(try database.clusters().map { ($0.name, $0.document) }, uniquingKeysWith: { a, _ in a })
        func take(_ path: String, _ bytes: [UInt8]) throws {
            let parts = path.split(separator: "/").map(String.init)
            if parts == ["version.txt"] {
                let version = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                guard version == "3" else { throw Failure(description: "\(source): archive version \(version); the SQLite archive holds version 3") }
                return
            }
            if parts.count == 2 && parts[1] == "cluster.json" {
                if let old = stored[parts[0]], old != bytes, !overwrite {
                    throw Failure(description: "\(database.path): \(path) exists with other content (use --overwrite to replace it)")
                }
                return try database.install(cluster: parts[0], document: bytes, now: now)
            }
            guard parts.count == 5, let l1 = Int64(parts[1]), let l2 = Int64(parts[2]), (0..<1000).contains(l2), let start = Int64(parts[3]),
                  ["meta.json", "data.json", "data.json.gz"].contains(parts[4]) else {
                throw Failure(description: "\(source): \(path) is not a job-archive file (version.txt, <cluster>/cluster.json, <cluster>/<id/1000>/<id%1000>/<start>/meta.json or data.json[.gz])")
            }
            let job = ArchiveWriter.JobKey(cluster: parts[0], jobId: l1 * 1000 + l2, startTime: start)
            var row = pending[job] ?? ArchiveDatabase.Row(cluster: job.cluster, jobId: job.jobId, startTime: start, meta: [], data: nil, compressed: false)
            if parts[4] == "meta.json" { row.meta = bytes } else { (row.data, row.compressed) = (bytes, parts[4] == "data.json.gz") }
            pending[job] = row
            jobs.insert(job)
            // A job's files split over two flushes are merged: only a bound on memory.
            if pending.count >= 500 { try flush() }
        }
        func flush() throws {
            do { try database.merge(Array(pending.values), overwrite: overwrite, now: now) } catch { throw Failure(description: error.description) }
            pending.removeAll()
        }
        let files = try forEachFile(in: source, progress: progress, take)
        try flush()
        let incomplete = try database.incomplete(cluster: nil)
        if let first = incomplete.first {
            throw Failure(description: "\(database.path): \(incomplete.count) jobs have data but no meta.json, e.g. \(first)")
        }
        return (jobs.count, files)
    }
}
