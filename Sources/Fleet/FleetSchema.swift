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
    ]
}
