import Store

/// The node tables, with cc-backend's names, CHECK enums and `UNIQUE(hostname, cluster)`.
/// Unlike cc-backend (one row per node per message), `node_state` holds change points: a row
/// starts when the scheduler state, the Slurm flags or the health state change, and
/// `last_seen` moves while they stay the same.
public enum NodeSchema {
    /// Migrations of module "nodes".
    public static let migrations = [
        Migration(module: "nodes", version: 1, sql: """
            CREATE TABLE node (
                id INTEGER PRIMARY KEY,
                hostname VARCHAR(255) NOT NULL,
                cluster VARCHAR(255) NOT NULL,
                subcluster VARCHAR(255) NOT NULL,
                meta_data TEXT,
                UNIQUE (hostname, cluster));
            CREATE INDEX nodes_cluster ON node (cluster);
            CREATE INDEX nodes_cluster_subcluster ON node (cluster, subcluster);
            CREATE TABLE node_state (
                id INTEGER PRIMARY KEY,
                time_stamp INTEGER NOT NULL,
                jobs_running INTEGER NOT NULL DEFAULT 0,
                cpus_allocated INTEGER NOT NULL DEFAULT 0,
                memory_allocated INTEGER NOT NULL DEFAULT 0,
                gpus_allocated INTEGER NOT NULL DEFAULT 0,
                node_state VARCHAR(255) NOT NULL CHECK (node_state IN ('allocated', 'reserved', 'idle', 'mixed', 'down', 'unknown')),
                health_state VARCHAR(255) NOT NULL CHECK (health_state IN ('full', 'partial', 'failed')),
                health_metrics TEXT,
                node_id INTEGER NOT NULL,
                slurm_flags TEXT NOT NULL DEFAULT '',
                last_seen INTEGER NOT NULL,
                FOREIGN KEY (node_id) REFERENCES node (id));
            CREATE INDEX nodestates_timestamp ON node_state (time_stamp);
            CREATE INDEX nodestates_state_timestamp ON node_state (node_state, time_stamp);
            CREATE INDEX nodestates_health_timestamp ON node_state (health_state, time_stamp);
            CREATE INDEX nodestates_nodeid_state ON node_state (node_id, node_state);
            CREATE INDEX nodestates_nodeid_health ON node_state (node_id, health_state);
            CREATE INDEX nodestates_nodeid_timestamp ON node_state (node_id, time_stamp DESC);
            CREATE INDEX nodestates_last_seen ON node_state (last_seen);
            """),
    ]
}
