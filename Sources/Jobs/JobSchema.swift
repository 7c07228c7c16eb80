import Store

/// The job tables. `job`, `tag` and `jobtag` use cc-backend's names, types, CHECK enums and
/// `UNIQUE(job_id, cluster, start_time)`, so ClusterCockpit users recognise them; clusterd's
/// own bookkeeping lives in `clusterd_*` tables beside them.
public enum JobSchema {
    /// Migrations of module "jobs".
    public static let migrations = [
        Migration(module: "jobs", version: 1, sql: """
            CREATE TABLE job (
                id INTEGER PRIMARY KEY,
                job_id BIGINT NOT NULL,
                cluster TEXT NOT NULL,
                subcluster TEXT NOT NULL,
                submit_time BIGINT NOT NULL DEFAULT 0,
                start_time BIGINT NOT NULL DEFAULT 0,
                hpc_user TEXT NOT NULL,
                project TEXT NOT NULL,
                cluster_partition TEXT,
                array_job_id BIGINT,
                duration INT NOT NULL,
                walltime INT NOT NULL,
                job_state TEXT NOT NULL CHECK (job_state IN ('boot_fail', 'cancelled', 'completed', 'deadline', 'failed',
                    'node_fail', 'out_of_memory', 'pending', 'preempted', 'running', 'suspended', 'timeout')),
                meta_data TEXT,
                resources TEXT NOT NULL,
                num_nodes INT NOT NULL,
                num_hwthreads INT,
                num_acc INT,
                smt INT NOT NULL DEFAULT 1,
                shared TEXT NOT NULL CHECK (shared IN ('none', 'single_user', 'multi_user')),
                monitoring_status TINYINT NOT NULL DEFAULT 1 CHECK (monitoring_status IN (0, 1, 2, 3)),
                energy REAL NOT NULL DEFAULT 0.0,
                energy_footprint TEXT DEFAULT NULL,
                footprint TEXT DEFAULT NULL,
                requested_memory BIGINT NOT NULL DEFAULT 0,
                UNIQUE (job_id, cluster, start_time));
            CREATE INDEX jobs_jobid_cluster ON job (job_id, cluster);
            CREATE INDEX jobs_cluster_jobstate_starttime ON job (cluster, job_state, start_time);
            CREATE INDEX jobs_cluster_user_starttime ON job (cluster, hpc_user, start_time);
            CREATE INDEX jobs_cluster_project_starttime ON job (cluster, project, start_time);
            CREATE INDEX jobs_starttime ON job (start_time);
            CREATE INDEX jobs_running ON job (cluster, start_time) WHERE job_state = 'running';
            CREATE INDEX jobs_archive_pending ON job (id) WHERE monitoring_status = 1 AND job_state <> 'running';

            CREATE TABLE tag (
                id INTEGER PRIMARY KEY,
                tag_type VARCHAR(255) NOT NULL,
                tag_name VARCHAR(255) NOT NULL,
                insert_ts TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                tag_scope TEXT NOT NULL DEFAULT 'global',
                UNIQUE (tag_type, tag_name));
            CREATE TABLE jobtag (
                job_id INTEGER,
                tag_id INTEGER,
                insert_ts TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                PRIMARY KEY (job_id, tag_id),
                FOREIGN KEY (job_id) REFERENCES job (id) ON DELETE CASCADE,
                FOREIGN KEY (tag_id) REFERENCES tag (id) ON DELETE CASCADE);
            CREATE INDEX tags_jobid ON jobtag (job_id);
            CREATE INDEX tags_tagid ON jobtag (tag_id);

            -- The events as received (canonical JSON), to tell a redelivery from a conflict.
            CREATE TABLE clusterd_job_event (
                job INTEGER PRIMARY KEY REFERENCES job (id) ON DELETE CASCADE,
                start_event TEXT NOT NULL,
                stop_event TEXT);
            -- Stops that arrived before their start.
            CREATE TABLE clusterd_held_stop (
                id INTEGER PRIMARY KEY,
                job_id BIGINT NOT NULL,
                cluster TEXT,
                start_time BIGINT,
                event TEXT NOT NULL,
                origin TEXT NOT NULL,
                raw TEXT NOT NULL,
                received_at INTEGER NOT NULL);
            CREATE INDEX clusterd_held_stop_job ON clusterd_held_stop (job_id);
            CREATE INDEX clusterd_held_stop_age ON clusterd_held_stop (received_at);
            """),
        Migration(module: "jobs", version: 2, sql: """
            -- Jobs that archive retention never removes, with who protected them and why.
            CREATE TABLE clusterd_job_protection (
                job INTEGER PRIMARY KEY REFERENCES job (id) ON DELETE CASCADE,
                protected_by TEXT NOT NULL,
                reason TEXT NOT NULL,
                protected_at INTEGER NOT NULL);
            """),
        Migration(module: "jobs", version: 3, sql: """
            -- Archive entries that could not be written (a full disk, say): retried with a
            -- growing delay until written; the job keeps monitoring status 2 meanwhile.
            CREATE TABLE clusterd_archive_retry (
                job INTEGER PRIMARY KEY REFERENCES job (id) ON DELETE CASCADE,
                attempts INTEGER NOT NULL,
                next_at INTEGER NOT NULL,
                last_error TEXT NOT NULL);
            """),
        Migration(module: "jobs", version: 4, sql: """
            -- Failed archive entries, found without reading the whole job table (bench jobs
            -- --preload: the pending-archive query scanned a million rows after every batch).
            CREATE INDEX jobs_archive_failed ON job (id) WHERE monitoring_status = 2 AND job_state <> 'running';
            """),
        Migration(module: "jobs", version: 5, sql: """
            -- Jobs the archive's disk budget evicted: what, why, by whom (the quota pass or an operator).
            CREATE TABLE clusterd_archive_eviction (
                id INTEGER PRIMARY KEY,
                at INTEGER NOT NULL,
                job_id BIGINT NOT NULL,
                cluster TEXT NOT NULL,
                start_time BIGINT NOT NULL,
                hpc_user TEXT NOT NULL,
                project TEXT NOT NULL,
                bytes INTEGER NOT NULL,
                reason TEXT NOT NULL,
                evicted_by TEXT NOT NULL);
            """),
        Migration(module: "jobs", version: 6, sql: """
            -- An eviction is recorded (pending, with the job's row) before its files go and finished
            -- (done, the job's rows gone) after: a crash in between is finished at the next start.
            ALTER TABLE clusterd_archive_eviction ADD COLUMN job INTEGER;
            ALTER TABLE clusterd_archive_eviction ADD COLUMN state TEXT NOT NULL DEFAULT 'done';
            CREATE INDEX clusterd_archive_eviction_pending ON clusterd_archive_eviction (id) WHERE state = 'pending';
            """),
        Migration(module: "jobs", version: 7, sql: """
            -- (job_id, cluster) is the head of UNIQUE (job_id, cluster, start_time): that index
            -- serves every lookup this one did, and each start paid for both.
            DROP INDEX jobs_jobid_cluster;
            """),
    ]
}
