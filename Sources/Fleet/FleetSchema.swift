import Store

/// The fleet tables, after the multi-server design (`managed_servers`, `server_health_checks`):
/// registered servers per organization and every health check. A server's bearer token is
/// never stored: only a reference to where it lives (`env:NAME` or `file:/path`).
public enum FleetSchema {
    /// Migrations of module "fleet".
    public static let migrations = [
        Migration(module: "fleet", version: 1, sql: """
            CREATE TABLE fleet_server (
                id TEXT PRIMARY KEY,
                organization TEXT NOT NULL,
                name TEXT NOT NULL,
                description TEXT NOT NULL DEFAULT '',
                hostname TEXT NOT NULL DEFAULT '',
                api_url TEXT NOT NULL DEFAULT '',
                token_ref TEXT NOT NULL DEFAULT '',
                region TEXT NOT NULL DEFAULT '',
                environment TEXT NOT NULL DEFAULT '',
                status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive', 'maintenance')),
                health_status TEXT NOT NULL DEFAULT 'unknown'
                    CHECK (health_status IN ('healthy', 'degraded', 'critical', 'unreachable', 'unknown')),
                version TEXT NOT NULL DEFAULT '',
                tags TEXT NOT NULL DEFAULT '[]',
                metadata TEXT NOT NULL DEFAULT '{}',
                heartbeat_seconds INTEGER NOT NULL DEFAULT 0,
                created_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL,
                last_seen_at INTEGER,
                last_health_check_at INTEGER,
                UNIQUE (organization, name));
            CREATE INDEX fleet_server_org_status ON fleet_server (organization, status, health_status);
            CREATE TABLE fleet_health_check (
                id INTEGER PRIMARY KEY,
                server_id TEXT NOT NULL REFERENCES fleet_server (id) ON DELETE CASCADE,
                at INTEGER NOT NULL,
                status TEXT NOT NULL,
                response_time_ms INTEGER,
                http_status INTEGER,
                database_healthy INTEGER,
                cache_healthy INTEGER,
                services_healthy INTEGER,
                error_message TEXT NOT NULL DEFAULT '');
            CREATE INDEX fleet_health_check_server ON fleet_health_check (server_id, at);
            """),
        Migration(module: "fleet", version: 2, sql: """
            CREATE TABLE fleet_group (
                id INTEGER PRIMARY KEY,
                organization TEXT NOT NULL,
                name TEXT NOT NULL,
                description TEXT NOT NULL DEFAULT '',
                tags TEXT NOT NULL DEFAULT '[]',
                regions TEXT NOT NULL DEFAULT '[]',
                environments TEXT NOT NULL DEFAULT '[]',
                created_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL,
                UNIQUE (organization, name));
            CREATE TABLE fleet_group_member (
                group_id INTEGER NOT NULL REFERENCES fleet_group (id) ON DELETE CASCADE,
                server_id TEXT NOT NULL REFERENCES fleet_server (id) ON DELETE CASCADE,
                added_at INTEGER NOT NULL,
                PRIMARY KEY (group_id, server_id)) WITHOUT ROWID;
            -- One row per fleet operation: the audit record (who, when, what, targets, outcome).
            CREATE TABLE fleet_operation (
                id TEXT PRIMARY KEY,
                organization TEXT NOT NULL,
                operation_type TEXT NOT NULL,
                parameters TEXT NOT NULL DEFAULT '{}',
                targets TEXT NOT NULL DEFAULT '{}',
                initiated_by TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed', 'partial')),
                total_servers INTEGER NOT NULL DEFAULT 0,
                completed_servers INTEGER NOT NULL DEFAULT 0,
                failed_servers INTEGER NOT NULL DEFAULT 0,
                results TEXT NOT NULL DEFAULT '{}',
                error_summary TEXT NOT NULL DEFAULT '',
                created_at INTEGER NOT NULL,
                started_at INTEGER,
                completed_at INTEGER);
            CREATE INDEX fleet_operation_org ON fleet_operation (organization, created_at);
            """),
        Migration(module: "fleet", version: 3, sql: """
            -- Aggregates of pushed server metrics per period (1m, 5m, 1h, 1d): every sample
            -- updates the bucket of each period it falls in; avg = sum / samples.
            CREATE TABLE fleet_metric (
                server_id TEXT NOT NULL REFERENCES fleet_server (id) ON DELETE CASCADE,
                metric TEXT NOT NULL,
                period TEXT NOT NULL CHECK (period IN ('1m', '5m', '1h', '1d')),
                bucket INTEGER NOT NULL,
                samples INTEGER NOT NULL,
                sum REAL NOT NULL,
                min REAL NOT NULL,
                max REAL NOT NULL,
                PRIMARY KEY (server_id, metric, period, bucket)) WITHOUT ROWID;
            CREATE INDEX fleet_metric_age ON fleet_metric (period, bucket);
            """),
    ]
}
