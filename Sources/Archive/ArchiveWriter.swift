import Foundation
import Jobs
import Model

/// Writes the ClusterCockpit job-archive v3 tree:
/// `<root>/version.txt`, `<root>/<cluster>/cluster.json` and
/// `<root>/<cluster>/<jobId/1000>/<jobId%1000 as %03d>/<startTime>/meta.json`.
/// A file that replaces another is written to a temporary name and renamed, so a crash never
/// leaves a half-written file where a whole one was; a new entry's files are written in place
/// and count only once synced (see ``stage(_:batch:)``).
/// With a ``database`` (`storage.archive_kind: sqlite`) the job entries are rows of that
/// file instead; the root keeps `version.txt` and the clusters' cluster.json either way.
public struct ArchiveWriter: Sendable {
    /// The archive root.
    public let root: String
    /// Where job entries go instead of the tree (cc-backend's `sqlite` archive kind).
    public let database: ArchiveDatabase?

    /// Why the archive could not be written.
    public struct WriteError: Error, Sendable, CustomStringConvertible {
        /// The file.
        public let path: String
        /// The system's reason.
        public let reason: String
        public var description: String { "cannot write \(path): \(reason)" }
    }

    /// An archive at `root`; creates it with `version.txt` = 3 when new, and refuses a root
    /// of another version.
    /// With `database`, job entries are rows of that SQLite file (``ArchiveDatabase``).
    public init(root: String, database: String? = nil) throws(WriteError) {
        self.root = root
        self.database = try database.map { path throws(WriteError) in try ArchiveDatabase.init(path: path, readOnly: false) }
        let version = "\(root)/version.txt"
        if let data = FileManager.default.contents(atPath: version) {
            let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if text != "3" { throw WriteError(path: version, reason: "archive version is \(text), clusterd writes version 3") }
        } else {
            try Self.atomicWrite(Array("3\n".utf8), to: version)
        }
    }

    /// The directory of one job.
    public func directory(cluster: String, jobId: Int64, startTime: Int64) -> String {
        "\(root)/\(Self.relativeDirectory(cluster: cluster, jobId: jobId, startTime: startTime))"
    }

    /// The directory of one job below the root: `<cluster>/<jobId/1000>/<jobId%1000 as %03d>/<startTime>`.
    public static func relativeDirectory(cluster: String, jobId: Int64, startTime: Int64) -> String {
        "\(cluster)/\(jobId / 1000)/\(threeDigits(jobId % 1000))/\(startTime)"
    }

    /// `n` (0…999) with leading zeros to three digits, as the v3 layout names the second level.
    static func threeDigits(_ n: Int64) -> String {
        let digits = String(n)
        return String(repeating: "0", count: max(0, 3 - digits.utf8.count)) + digits
    }

    /// The job's meta.json path.
    public func metaPath(_ job: JobRecord) -> String {
        directory(cluster: job.start.cluster, jobId: job.start.jobId, startTime: job.start.startTime) + "/meta.json"
    }

    /// One job's archive files (`meta.json`, and `data.json` or `data.json.gz`).
    public struct Entry: Sendable {
        public var job: JobRecord
        public var files: [(name: String, bytes: [UInt8])]

        /// An entry.
        public init(job: JobRecord, files: [(name: String, bytes: [UInt8])]) {
            self.job = job
            self.files = files
        }
    }

    /// Entries whose files are written, not yet synced (``stage(_:batch:)``); ``commit(_:)``
    /// makes them durable and puts the ones written under temporary names in place.
    public struct Staged: Sendable {
        /// The entries, in the order given.
        public var entries: [Entry]
        /// Per entry: its meta.json path, or why its files could not be written.
        var results: [Result<String, WriteError>]
        /// The temporary files and where each goes (entries whose directory already existed).
        var files: [(index: Int, temporary: String, path: String)]
        /// Whether any file was written (under its own name or a temporary one).
        var wrote = false

        /// Several staged sets as one, to be committed with one sync (two when a rewrite is among them).
        public static func joined(_ sets: [Staged]) -> Staged {
            var joined = Staged(entries: [], results: [], files: [])
            for set in sets {
                let offset = joined.entries.count
                joined.entries += set.entries
                joined.results += set.results
                joined.files += set.files.map { (index: $0.index + offset, temporary: $0.temporary, path: $0.path) }
                joined.wrote = joined.wrote || set.wrote
            }
            return joined
        }
    }

    /// Writes the files of many jobs with one or two file-system syncs in all instead of one
    /// per file (see ``stage(_:batch:)`` and ``commit(_:)``). Only after that are the entries
    /// reported written (with their meta.json path), so a crash at any point leaves the job
    /// pending (re-archived at the next start) or its entry complete.
    public func write(_ entries: [Entry]) -> [Result<String, WriteError>] {
        commit(stage(entries))
    }

    /// The first half of ``write(_:)``: every entry's files written, unsynced. A new entry
    /// (its `<startTime>` directory made here) gets its files under their own names: nothing
    /// of it was there to keep, and a crash before the sync leaves it pending, so the next
    /// start writes it again — through temporary names, as for every entry whose directory
    /// already exists (a rewrite must never leave a half-written file where a good one was).
    /// `batch` tells the temporary names of one call from another's, so that two staged sets
    /// in flight at once never share a temporary file.
    public func stage(_ entries: [Entry], batch: UInt64 = 0) -> Staged {
        // Rows are written at the commit, in one transaction: nothing to stage.
        if database != nil { return Staged(entries: entries, results: entries.map { .success(location(of: $0.job)) }, files: [], wrote: !entries.isEmpty) }
        var results: [Result<String, WriteError>] = []
        var staged: [(index: Int, temporary: String, path: String)] = []
        var wrote = false
        // `<root>/<cluster>/<jobId/1000>`, opened once per batch: a job's two new levels and
        // its files are made relative to it, a walk of two or three path components instead
        // of the whole path (~3 % of this thread's CPU). Held for this call only, so a
        // directory removed or moved meanwhile is never written through.
        var bases: [String: Int32] = [:]
        defer { for fd in bases.values { close(fd) } }
        for (i, entry) in entries.enumerated() {
            let job = entry.job.start
            let base = "\(root)/\(job.cluster)/\(job.jobId / 1000)"
            let level2 = Self.threeDigits(job.jobId % 1000)
            let relative = "\(level2)/\(job.startTime)"
            let dir = "\(base)/\(relative)"
            let fd: Int32
            if let open = bases[base] {
                fd = open
            } else {
                do { fd = try Self.openDirectory(base) } catch { results.append(.failure(error)); continue }
                bases[base] = fd
            }
            let made = (mkdirat(fd, level2, 0o755) == 0 || errno == EEXIST) && mkdirat(fd, relative, 0o755) == 0
            if !made && errno != EEXIST {
                results.append(.failure(WriteError(path: dir, reason: String(cString: strerror(errno)))))
                continue
            }
            var mine: [(index: Int, temporary: String, path: String)] = []
            var direct: [String] = []
            do {
                for file in entry.files {
                    if made {
                        try Self.write(file.bytes, at: fd, "\(relative)/\(file.name)", path: "\(dir)/\(file.name)", exclusive: true)
                        direct.append("\(dir)/\(file.name)")
                    } else {
                        // Named per entry and batch: two entries in flight may share a directory.
                        let name = Self.temporaryName(file.name, tag: "\(batch).\(i)")
                        try Self.write(file.bytes, at: fd, "\(relative)/\(name)", path: "\(dir)/\(name)", exclusive: false)
                        mine.append((i, "\(dir)/\(name)", "\(dir)/\(file.name)"))
                    }
                    wrote = true
                }
                staged += mine
                results.append(.success("\(dir)/meta.json"))
            } catch {
                for m in mine { unlink(m.temporary) }
                for path in direct { unlink(path) }
                results.append(.failure(error))
            }
        }
        return Staged(entries: entries, results: results, files: staged, wrote: wrote)
    }

    /// The second half of ``write(_:)``: syncs what was staged, renames the temporary files
    /// into place and syncs the renames; returns each entry's meta.json path or error.
    public func commit(_ staged: Staged, now: Int64 = Int64(Date().timeIntervalSince1970)) -> [Result<String, WriteError>] {
        var results = staged.results
        guard staged.wrote else { return results }
        if let database {
            do {
                try database.write(staged.entries.map(Self.row), now: now)
            } catch {
                for i in results.indices where results[i].isSuccess { results[i] = .failure(error) }
            }
            return results
        }
        if !Self.syncFileSystem(of: root) {
            let error = WriteError(path: root, reason: "syncfs: \(String(cString: strerror(errno)))")
            for s in staged.files { unlink(s.temporary) }
            for i in results.indices where results[i].isSuccess { results[i] = .failure(error) }
            return results
        }
        guard !staged.files.isEmpty else { return results }
        for s in staged.files where rename(s.temporary, s.path) != 0 && results[s.index].isSuccess {
            results[s.index] = .failure(WriteError(path: s.path, reason: String(cString: strerror(errno))))
            unlink(s.temporary)
        }
        if !Self.syncFileSystem(of: root) {
            let error = WriteError(path: root, reason: "syncfs: \(String(cString: strerror(errno)))")
            for s in staged.files { results[s.index] = .failure(error) }
        }
        return results
    }

    static func syncFileSystem(of path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { return false }
        defer { close(fd) }
        #if os(Linux)
        return linuxSyncfs(fd) == 0
        #else
        return fsync(fd) == 0
        #endif
    }

    /// One entry as a row of the SQLite archive: its meta.json, and data.json or data.json.gz.
    static func row(_ entry: Entry) -> ArchiveDatabase.Row {
        let data = entry.files.first { $0.name.hasPrefix("data.json") }
        return ArchiveDatabase.Row(cluster: entry.job.start.cluster, jobId: entry.job.start.jobId, startTime: entry.job.start.startTime,
                                   meta: entry.files.first { $0.name == "meta.json" }?.bytes ?? [], data: data?.bytes,
                                   compressed: data?.name.hasSuffix(".gz") ?? false)
    }

    /// Where `job`'s entry is: its meta.json in the tree, or its row in the SQLite archive
    /// (`<file>#<cluster>/<jobId>/<startTime>`).
    public func location(of job: JobRecord) -> String {
        let start = job.start
        if let database { return "\(database.path)#\(start.cluster)/\(start.jobId)/\(start.startTime)" }
        return metaPath(job)
    }

    /// A job's identity in the archive: its directory in the tree, its row's key in the file.
    public struct JobKey: Sendable, Hashable {
        /// The cluster's name.
        public var cluster: String
        /// The scheduler's job id.
        public var jobId: Int64
        /// The job's start (epoch seconds).
        public var startTime: Int64

        /// A key.
        public init(cluster: String, jobId: Int64, startTime: Int64) {
            self.cluster = cluster
            self.jobId = jobId
            self.startTime = startTime
        }
    }

    /// Removes jobs' entries: their rows (one transaction), or their directories and the
    /// parents they leave empty.
    public func remove(_ jobs: [JobKey]) throws(WriteError) {
        if let database { return try database.remove(jobs) }
        for job in jobs {
            let dir = directory(cluster: job.cluster, jobId: job.jobId, startTime: job.startTime)
            try? FileManager.default.removeItem(atPath: dir)
            // <id/1000>/<id%1000>/ left empty go too (rmdir takes only an empty directory).
            var parent = URL(fileURLWithPath: dir).deletingLastPathComponent()
            for _ in 0..<2 where rmdir(parent.path) == 0 { parent = parent.deletingLastPathComponent() }
        }
    }

    /// The bytes of a job's entry: its files, or its row's meta.json and data.
    public func bytes(of job: JobKey) -> Int64 {
        if let database { return (try? database.bytes(of: job)) ?? 0 }
        return Self.size(of: directory(cluster: job.cluster, jobId: job.jobId, startTime: job.startTime))
    }

    /// The bytes of every entry and cluster.json: the tree's regular files, or the SQLite
    /// archive's entries and `clusters` rows (not the root's copies of those, nor the file
    /// itself, which may lie under the root).
    public func totalBytes() -> Int64 {
        guard let database else { return Self.size(of: root) }
        return (try? database.totalBytes()) ?? 0
    }

    /// The bytes of the regular files under `path` — not directories' own sizes (4 KB each on
    /// ext4), which a job's directory walk would not count: the archive's total and the sum of
    /// its jobs must be measured alike, or a pass evicts more than the low mark asks.
    public static func size(of path: String) -> Int64 {
        let keys: Set<URLResourceKey> = [.fileSizeKey, .isRegularFileKey]
        guard let walk = FileManager.default.enumerator(at: URL(fileURLWithPath: path), includingPropertiesForKeys: Array(keys)) else { return 0 }
        var total: Int64 = 0
        for case let url as URL in walk {
            guard let values = try? url.resourceValues(forKeys: keys), values.isRegularFile == true else { continue }
            total += Int64(values.fileSize ?? 0)
        }
        return total
    }

    /// The clusters the archive defines: its `<root>/<cluster>/cluster.json` files, and those
    /// the SQLite archive's `clusters` table adds (a cluster.json imported into it, or written
    /// there by cc-backend).
    public func clusters() throws -> ClusterRegistry {
        let files = try ClusterRegistry.load(archiveRoot: root)
        guard let database else { return files }
        var byName = files.clusters
        for stored in try database.clusters() where byName[stored.name] == nil {
            byName[stored.name] = try ClusterConfig(document: stored.document, file: "\(database.path) (clusters: \(stored.name))")
        }
        return ClusterRegistry(Array(byName.values))
    }

    /// Writes `<root>/<cluster>/cluster.json` unless the file already holds these bytes (and
    /// the SQLite archive's `clusters` row, where cc-backend reads it from).
    public func install(_ cluster: ClusterConfig) throws(WriteError) {
        try database?.install(cluster: cluster.name, document: cluster.document, now: Int64(Date().timeIntervalSince1970))
        let path = "\(root)/\(cluster.name)/cluster.json"
        if let existing = FileManager.default.contents(atPath: path), Array(existing) == cluster.document { return }
        try Self.atomicWrite(cluster.document, to: path)
    }

    /// Writes `bytes` to a temporary file in the target directory, syncs it, and renames it.
    public static func atomicWrite(_ bytes: [UInt8], to path: String) throws(WriteError) {
        let temporary = try writeTemporary(bytes, for: path, sync: true)
        if rename(temporary, path) != 0 {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw WriteError(path: path, reason: reason)
        }
    }

    /// Writes `bytes` to a temporary file beside `path` (optionally synced); returns its name.
    static func writeTemporary(_ bytes: [UInt8], for path: String, sync: Bool) throws(WriteError) -> String {
        let directory = (path as NSString).deletingLastPathComponent
        try makeDirectory(directory)
        let temporary = "\(directory)/\(temporaryName((path as NSString).lastPathComponent, tag: ""))"
        try write(bytes, at: AT_FDCWD, temporary, path: temporary, exclusive: false, sync: sync)
        return temporary
    }

    /// The temporary name of file `name` (hidden, this process's, `tag` told apart).
    static func temporaryName(_ name: String, tag: String) -> String {
        ".\(name).\(getpid())\(tag.isEmpty ? "" : ".\(tag)").tmp"
    }

    /// Opens `directory`, made first when missing (the first entry under a new thousand of
    /// ids, or a new cluster).
    static func openDirectory(_ directory: String) throws(WriteError) -> Int32 {
        let flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC
        var fd = open(directory, flags)
        if fd < 0 && errno == ENOENT {
            try makeDirectory(directory)
            fd = open(directory, flags)
        }
        if fd < 0 { throw WriteError(path: directory, reason: String(cString: strerror(errno))) }
        return fd
    }

    /// Creates `directory` and, when missing, its parent: the two levels a new job adds
    /// (`<jobId%1000>/<startTime>`), two system calls instead of FileManager's walk of every
    /// level; FileManager only when more is missing (a new cluster or thousand of ids).
    static func makeDirectory(_ directory: String) throws(WriteError) {
        if mkdir(directory, 0o755) == 0 || errno == EEXIST { return }
        if errno == ENOENT, let slash = directory.utf8.lastIndex(of: UInt8(ascii: "/")) {
            let parent = String(directory[..<slash])
            if (mkdir(parent, 0o755) == 0 || errno == EEXIST) && (mkdir(directory, 0o755) == 0 || errno == EEXIST) { return }
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw WriteError(path: directory, reason: "\(error.localizedDescription)")
        }
    }

    /// Writes `bytes` to the file `name` below the open directory `directory` (`path` is its
    /// full path, for errors and clean-up): created only if new when `exclusive`, else
    /// created or truncated; optionally synced. A file not completely written is removed.
    static func write(_ bytes: [UInt8], at directory: Int32, _ name: String, path: String, exclusive: Bool,
                      sync: Bool = false) throws(WriteError) {
        let fd = openat(directory, name, O_WRONLY | O_CREAT | O_CLOEXEC | (exclusive ? O_EXCL : O_TRUNC), 0o644)
        if fd < 0 { throw WriteError(path: path, reason: String(cString: strerror(errno))) }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress! + written, bytes.count - written) }
            if n < 0 {
                let reason = String(cString: strerror(errno))
                close(fd)
                unlink(path)
                throw WriteError(path: path, reason: reason)
            }
            written += n
        }
        let synced = !sync || fsync(fd) == 0
        let reason = String(cString: strerror(errno))
        close(fd)
        if !synced {
            unlink(path)
            throw WriteError(path: path, reason: reason)
        }
    }
}

extension Result {
    var isSuccess: Bool {
        if case .success = self { return true }
        return false
    }
}

#if os(Linux)
/// glibc's syncfs(2) (flushes one file system), which the Glibc module does not import
/// without _GNU_SOURCE.
@_silgen_name("syncfs")
private func linuxSyncfs(_ fd: Int32) -> Int32
#endif
