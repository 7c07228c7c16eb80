/// One schema step, applied once. Versions are kept per module in table `schema_migration`,
/// so each module owns and migrates its own tables.
public struct Migration: Sendable {
    /// The module owning the tables (e.g. "jobs"), so modules migrate independently.
    public let module: String
    /// Increasing version within the module, starting at 1.
    public let version: Int
    /// The SQL to run.
    public let sql: String

    /// Creates a migration.
    public init(module: String, version: Int, sql: String) {
        self.module = module
        self.version = version
        self.sql = sql
    }
}

extension Database {
    /// Applies the migrations not applied yet, each in its own transaction.
    /// Returns how many ran.
    @discardableResult
    public func migrate(_ migrations: [Migration]) throws(StoreError) -> Int {
        try execute("""
            CREATE TABLE IF NOT EXISTS schema_migration (
                module TEXT NOT NULL, version INTEGER NOT NULL,
                applied_at INTEGER NOT NULL DEFAULT (unixepoch()),
                PRIMARY KEY (module, version))
            """)
        var applied = 0
        for m in migrations.sorted(by: { ($0.module, $0.version) < ($1.module, $1.version) }) {
            let done = try prepare("SELECT 1 FROM schema_migration WHERE module = ? AND version = ?")
                .first([.text(m.module), .integer(Int64(m.version))]) { _ in true } ?? false
            if done { continue }
            do {
                try transaction {
                    try execute(m.sql)
                    try prepare("INSERT INTO schema_migration (module, version) VALUES (?, ?)")
                        .run([.text(m.module), .integer(Int64(m.version))])
                }
            } catch let e as StoreError {
                throw StoreError(code: e.code, message: e.message, context: "migration \(m.module) v\(m.version)")
            } catch {
                throw StoreError(code: 1, message: "\(error)", context: "migration \(m.module) v\(m.version)")
            }
            applied += 1
        }
        return applied
    }
}
