import Store

/// The alert tables: the state of every alert instance (so a restart neither re-fires what
/// fires nor loses a resolve), every transition with its sequence, and maintenance windows.
public enum AlertSchema {
    /// Migrations of module "alerts".
    public static let migrations = [
        Migration(module: "alerts", version: 1, sql: """
            CREATE TABLE alert (
                fingerprint TEXT PRIMARY KEY,
                check_id TEXT NOT NULL,
                cluster TEXT NOT NULL,
                entity TEXT NOT NULL,
                component TEXT NOT NULL,
                rack TEXT NOT NULL DEFAULT '',
                room TEXT NOT NULL DEFAULT '',
                site TEXT NOT NULL DEFAULT '',
                labels TEXT NOT NULL,
                summary TEXT NOT NULL,
                severity TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('firing', 'resolved')),
                starts_at INTEGER NOT NULL,
                ends_at INTEGER,
                last_problem_at INTEGER NOT NULL,
                value REAL,
                flapping INTEGER NOT NULL DEFAULT 0,
                sequence INTEGER NOT NULL,
                silenced INTEGER NOT NULL DEFAULT 0,
                -- whether consumers were told it fires (a resolve is published only then)
                announced INTEGER NOT NULL DEFAULT 0,
                last_sent_at INTEGER NOT NULL DEFAULT 0,
                resends INTEGER NOT NULL DEFAULT 0,
                updated_at INTEGER NOT NULL) WITHOUT ROWID;
            CREATE INDEX alert_status ON alert (status, severity);
            CREATE INDEX alert_entity ON alert (cluster, entity);
            CREATE TABLE alert_transition (
                fingerprint TEXT NOT NULL,
                sequence INTEGER NOT NULL,
                status TEXT NOT NULL,
                severity TEXT NOT NULL,
                flapping INTEGER NOT NULL,
                silenced INTEGER NOT NULL,
                published INTEGER NOT NULL,
                at INTEGER NOT NULL,
                PRIMARY KEY (fingerprint, sequence)) WITHOUT ROWID;
            CREATE INDEX alert_transition_at ON alert_transition (at);
            CREATE TABLE maintenance (
                id INTEGER PRIMARY KEY,
                scope TEXT NOT NULL CHECK (scope IN ('site', 'room', 'rack', 'node')),
                target TEXT NOT NULL,
                reason TEXT NOT NULL,
                created_by TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                starts_at INTEGER NOT NULL,
                ends_at INTEGER,
                ended_at INTEGER);
            CREATE INDEX maintenance_active ON maintenance (ended_at, starts_at);
            """),
        // Topology-causal inhibition: the fingerprint of the firing parent alert (a rack-scope
        // check, a PDU or switch of the rack) that keeps this one from being published.
        Migration(module: "alerts", version: 2, sql: """
            ALTER TABLE alert ADD COLUMN inhibited_by TEXT NOT NULL DEFAULT '';
            """),
    ]
}
