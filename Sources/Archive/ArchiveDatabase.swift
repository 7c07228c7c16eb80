import Foundation
import Store
import Synchronization

/// cc-backend's SQLite job archive (`archive: {kind: sqlite, dbPath: …}` in its config): one
/// row per job in `jobs` holding the bytes meta.json and data.json (or data.json.gz) would have
/// in the directory tree, the clusters' cluster.json in `clusters`, the archive version in
/// `metadata`. Same tables and indexes as cc-backend makes, so either can open a file the other
/// wrote. Chosen over the tree for its cost: a job's entry is a row, not two directories and a
/// file (`clusterd bench jobs --archive-kind sqlite`).
///
/// Its connection is the archive's own, to its own file: the archive's finisher writes the
/// entries, retention and eviction remove some, one at a time (a mutex). The service's
/// database keeps its single writer; this file is to the archive what the tree's directories are.
public final class ArchiveDatabase: Sendable {
    /// The SQLite file.
    public let path: String
    private let connection: Mutex<Database>

    /// cc-backend's schema (`pkg/archive/sqliteBackend.go`), created when missing.
    static let schema = """
        CREATE TABLE IF NOT EXISTS jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            job_id INTEGER NOT NULL,
            cluster TEXT NOT NULL,
            start_time INTEGER NOT NULL,
            meta_json BLOB NOT NULL,
            data_json BLOB,
            data_compressed BOOLEAN DEFAULT 0,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            UNIQUE(job_id, cluster, start_time));
        CREATE INDEX IF NOT EXISTS idx_jobs_cluster ON jobs(cluster);
        CREATE INDEX IF NOT EXISTS idx_jobs_start_time ON jobs(start_time);
        CREATE INDEX IF NOT EXISTS idx_jobs_lookup ON jobs(cluster, job_id, start_time);
        CREATE TABLE IF NOT EXISTS clusters (
            name TEXT PRIMARY KEY,
            config_json BLOB NOT NULL,
            updated_at INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS metadata (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL);
        """

    /// One job's entry as stored.
    public struct Row: Sendable, Equatable {
        /// The job's identity, as in its directory's path in the tree.
        public var cluster: String
        /// The scheduler's job id.
        public var jobId: Int64
        /// The job's start (epoch seconds).
        public var startTime: Int64
        /// meta.json's bytes.
        public var meta: [UInt8]
        /// data.json's bytes (gzip when `compressed`); nil: the job has no metric data.
        public var data: [UInt8]?
        /// Whether `data` is gzip (data.json.gz in the tree).
        public var compressed: Bool

        /// A row.
        public init(cluster: String, jobId: Int64, startTime: Int64, meta: [UInt8], data: [UInt8]?, compressed: Bool) {
            self.cluster = cluster
            self.jobId = jobId
            self.startTime = startTime
            self.meta = meta
            self.data = data
            self.compressed = compressed
        }
    }

    /// Opens (creating when new) the archive at `path`, archive version 3, and refuses one of
    /// another version. Commits are synced (`synchronous=FULL`): an entry counts as written
    /// only once it would survive a power cut, as the tree's do after their `syncfs`.
    /// `readOnly` opens an existing archive to read it (an export): nothing is created or written.
    public init(path: String, readOnly: Bool = false) throws(ArchiveWriter.WriteError) {
        self.path = path
        do {
            if !readOnly {
                try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            }
        } catch {
            throw ArchiveWriter.WriteError(path: path, reason: "\(error.localizedDescription)")
        }
        do {
            let database = try Database(path: path, readOnly: readOnly)
            if !readOnly {
                try database.execute("PRAGMA synchronous=FULL")
                try database.execute(Self.schema)
                try database.execute("INSERT INTO metadata (key, value) VALUES ('version', '3') ON CONFLICT (key) DO NOTHING")
            }
            let version = try database.prepare("SELECT value FROM metadata WHERE key = 'version'").first { $0.text(0) } ?? ""
            if version != "3" {
                throw ArchiveWriter.WriteError(path: path, reason: "archive version is \(version), clusterd writes version 3")
            }
            connection = Mutex(database)
        } catch let error as ArchiveWriter.WriteError {
            throw error
        } catch {
            throw ArchiveWriter.WriteError(path: path, reason: "\(error)")
        }
    }

    /// Runs `body` on the connection, an error as the archive's.
    private func run<T: Sendable>(_ body: (Database) throws -> T) throws(ArchiveWriter.WriteError) -> T {
        do {
            return try connection.withLock { database in try body(database) }
        } catch let error as ArchiveWriter.WriteError {
            throw error
        } catch {
            throw ArchiveWriter.WriteError(path: path, reason: "\(error)")
        }
    }

    /// Stores `rows` in one transaction (one sync): all of them or, on an error, none. A row
    /// already there for the job (a re-archive) is replaced, as cc-backend's `ImportJob` does.
    public func write(_ rows: [Row], now: Int64) throws(ArchiveWriter.WriteError) {
        try run { database in
            try database.transaction {
                for row in rows { try Self.upsert(row, now: now, in: database) }
            }
        }
    }

    /// Inserts `row`, or replaces the stored entry of its job (keeping when it was first made).
    private static func upsert(_ row: Row, now: Int64, in database: Database) throws(StoreError) {
        try database.prepare(static: """
            INSERT INTO jobs (job_id, cluster, start_time, meta_json, data_json, data_compressed, created_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (job_id, cluster, start_time) DO UPDATE SET meta_json = excluded.meta_json,
                data_json = excluded.data_json, data_compressed = excluded.data_compressed, updated_at = excluded.updated_at
            """).run([.integer(row.jobId), .text(row.cluster), .integer(row.startTime), .blob(row.meta),
                      row.data.map(SQLValue.blob) ?? .null, .integer(row.compressed ? 1 : 0), .integer(now), .integer(now)])
    }

    /// Stores parts of entries (an import): a part a row lacks (meta.json empty, data nil)
    /// keeps what is stored. A stored part with other bytes is refused unless `overwrite`,
    /// naming the file it stands for. All rows or, on an error, none.
    public func merge(_ rows: [Row], overwrite: Bool, now: Int64) throws(ArchiveWriter.WriteError) {
        try run { database in
            try database.transaction {
                for new in rows {
                    let key: [SQLValue] = [.integer(new.jobId), .text(new.cluster), .integer(new.startTime)]
                    var row = new
                    if let old = try database.prepare("SELECT meta_json, data_json, data_compressed FROM jobs WHERE job_id = ? AND cluster = ? AND start_time = ?")
                        .first(key, { Row(cluster: new.cluster, jobId: new.jobId, startTime: new.startTime, meta: $0.blob(0),
                                          data: $0.isNull(1) ? nil : $0.blob(1), compressed: $0.int(2) != 0) }) {
                        let directory = ArchiveWriter.relativeDirectory(cluster: new.cluster, jobId: new.jobId, startTime: new.startTime)
                        if !overwrite && !new.meta.isEmpty && !old.meta.isEmpty && new.meta != old.meta {
                            throw ArchiveWriter.WriteError(path: path, reason: "\(directory)/meta.json exists with other content (use --overwrite to replace it)")
                        }
                        if !overwrite, let data = new.data, let stored = old.data, (data, new.compressed) != (stored, old.compressed) {
                            throw ArchiveWriter.WriteError(path: path, reason: "\(directory)/data.json\(old.compressed ? ".gz" : "") exists with other content (use --overwrite to replace it)")
                        }
                        if row.meta.isEmpty { row.meta = old.meta }
                        if row.data == nil { (row.data, row.compressed) = (old.data, old.compressed) }
                    }
                    try Self.upsert(row, now: now, in: database)
                }
            }
        }
    }

    /// The jobs (of one cluster, all when nil) with data but no meta.json yet (an import
    /// that brought only part of an entry), as their directories.
    public func incomplete(cluster: String?) throws(ArchiveWriter.WriteError) -> [String] {
        try run { database in
            try database.prepare("SELECT cluster, job_id, start_time FROM jobs WHERE length(meta_json) = 0 AND (?1 IS NULL OR cluster = ?1) ORDER BY id")
                .rows([cluster.map(SQLValue.text) ?? .null]) { ArchiveWriter.relativeDirectory(cluster: $0.text(0), jobId: $0.int(1), startTime: $0.int(2)) }
        }
    }

    /// How many jobs (of one cluster, all when nil) and how many files they are in the tree.
    public func count(cluster: String?) throws(ArchiveWriter.WriteError) -> (jobs: Int, files: Int) {
        try run { database in
            try database.prepare("SELECT count(*), count(*) + count(data_json) FROM jobs WHERE ?1 IS NULL OR cluster = ?1")
                .first([cluster.map(SQLValue.text) ?? .null]) { (jobs: Int($0.int(0)), files: Int($0.int(1))) } ?? (0, 0)
        }
    }

    /// Stores a cluster's cluster.json unless it holds these bytes already.
    public func install(cluster name: String, document: [UInt8], now: Int64) throws(ArchiveWriter.WriteError) {
        try run { database in
            try database.prepare("""
                INSERT INTO clusters (name, config_json, updated_at) VALUES (?, ?, ?)
                ON CONFLICT (name) DO UPDATE SET config_json = excluded.config_json, updated_at = excluded.updated_at
                WHERE config_json IS NOT excluded.config_json
                """).run([.text(name), .blob(document), .integer(now)])
        }
    }

    /// Removes jobs' entries (nothing for one that has none), in one transaction: one sync for
    /// a retention or eviction batch, not one per job.
    public func remove(_ jobs: [ArchiveWriter.JobKey]) throws(ArchiveWriter.WriteError) {
        try run { database in
            try database.transaction {
                for job in jobs {
                    try database.prepare("DELETE FROM jobs WHERE job_id = ? AND cluster = ? AND start_time = ?")
                        .run([.integer(job.jobId), .text(job.cluster), .integer(job.startTime)])
                }
            }
        }
    }

    /// The bytes of one job's entry (its meta.json and data), 0 when it has none.
    public func bytes(of job: ArchiveWriter.JobKey) throws(ArchiveWriter.WriteError) -> Int64 {
        try run { database in
            try database.prepare("""
                SELECT length(meta_json) + coalesce(length(data_json), 0) FROM jobs WHERE job_id = ? AND cluster = ? AND start_time = ?
                """).first([.integer(job.jobId), .text(job.cluster), .integer(job.startTime)]) { $0.int(0) } ?? 0
        }
    }

    /// The bytes of every entry and cluster.json: what the tree's regular files would hold
    /// (the file itself is larger by its pages' free space and indexes).
    public func totalBytes() throws(ArchiveWriter.WriteError) -> Int64 {
        try run { database in
            try database.prepare("""
                SELECT (SELECT coalesce(sum(length(meta_json) + coalesce(length(data_json), 0)), 0) FROM jobs)
                     + (SELECT coalesce(sum(length(config_json)), 0) FROM clusters)
                """).first { $0.int(0) } ?? 0
        }
    }

    /// The bytes of the file's free pages: what removed entries left, which new ones reuse
    /// (SQLite does not give a file's pages back to the file system without a VACUUM).
    public func reusableBytes() throws(ArchiveWriter.WriteError) -> Int64 {
        try run { database in
            let pages = try database.prepare("PRAGMA freelist_count").first { $0.int(0) } ?? 0
            return pages * (try database.prepare("PRAGMA page_size").first { $0.int(0) } ?? 0)
        }
    }

    /// Every cluster's cluster.json, by name.
    public func clusters() throws(ArchiveWriter.WriteError) -> [(name: String, document: [UInt8])] {
        try run { database in
            try database.prepare("SELECT name, config_json FROM clusters ORDER BY name").rows { (name: $0.text(0), document: $0.blob(1)) }
        }
    }

    /// Up to `limit` entries of one cluster (all when nil) past row `after`, in the order they
    /// were first written: page on with the last one's `id`.
    public func rows(cluster: String?, after: Int64, limit: Int) throws(ArchiveWriter.WriteError) -> [(id: Int64, row: Row)] {
        try run { database in
            try database.prepare("""
                SELECT id, cluster, job_id, start_time, meta_json, data_json, data_compressed FROM jobs
                WHERE id > ? AND (?2 IS NULL OR cluster = ?2) ORDER BY id LIMIT ?3
                """).rows([.integer(after), cluster.map(SQLValue.text) ?? .null, .integer(Int64(limit))]) {
                (id: $0.int(0), row: Row(cluster: $0.text(1), jobId: $0.int(2), startTime: $0.int(3), meta: $0.blob(4),
                                         data: $0.isNull(5) ? nil : $0.blob(5), compressed: $0.int(6) != 0))
            }
        }
    }
}
