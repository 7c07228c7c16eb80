import Bus
import Dispatch
import Foundation
import Logging
import Observability
import Synchronization
import Threads

/// Which of several clusterd replicas publishes: a lease held in a NATS key-value bucket
/// whose entries live `ttl` after their last write (JetStream's replicated store, no consensus
/// of our own). A replica that sees no holder creates the key — the server lets exactly one
/// create succeed; the holder rewrites it every `ttl / 4`, each write conditional on its own
/// last revision. A holder that could not renew for `ttl / 2` stops counting as holder before
/// anyone else can take over (the key outlives its last write by `ttl`, and a standby that saw
/// no renewal for 3/4 of it takes it); a holder that stops deletes the key, so a standby takes
/// over at its next look (within `poll`).
public final class PublisherLease: Sendable {
    /// Where the lease lives and how long it lasts.
    public struct Settings: Sendable {
        /// The key-value bucket (created with `replicas` and `ttl` when missing).
        public var bucket: String
        /// This replica's name, stored as the lease's value.
        public var instance: String
        /// How long the lease outlives its holder's last renewal.
        public var ttl: Duration
        /// Replicas of the bucket on a NATS cluster.
        public var replicas: Int
        /// The key (one lease per publishing role).
        public var key = "publisher"

        /// Settings for `instance`.
        public init(bucket: String, instance: String, ttl: Duration, replicas: Int) {
            self.bucket = bucket
            self.instance = instance
            self.ttl = ttl
            self.replicas = replicas
        }

        /// How often a standby looks for a free lease.
        var poll: Duration { min(ttl / 8, .milliseconds(250)) }
    }

    let settings: Settings
    let connection: BusConnection
    let logger: Logger
    let counters: PipelineCounters
    private let onChange: @Sendable (Bool) -> Void
    private let worker = WorkerThread()
    private let wake = DispatchSemaphore(value: 0)
    /// Uptime (ns) of the last successful create or renewal while held; 0 when not held.
    private let renewedAt = Atomic<UInt64>(0)
    /// The holder's revision as this standby last saw it, and when (uptime ns) it first did.
    private let observed = Mutex<(revision: UInt64, since: UInt64)?>(nil)

    /// A lease for `settings.instance`; `onChange(true)` runs (on the lease's thread) when it
    /// is acquired, `onChange(false)` when it is lost or given up.
    public init(connection: BusConnection, settings: Settings, counters: PipelineCounters, logger: Logger,
                onChange: @escaping @Sendable (Bool) -> Void) {
        self.connection = connection
        self.settings = settings
        self.counters = counters
        self.logger = logger
        self.onChange = onChange
    }

    /// Creates the bucket when missing (at start-up, where errors are retried).
    public func ensureBucket() throws {
        _ = try JetStream(connection).keyValue(bucket: settings.bucket, description: "clusterd: which replica publishes (lease)",
                                               history: 1, replicas: settings.replicas, ttl: settings.ttl,
                                               // Nothing in it outlives a TTL: no disk writes on the way of a renewal.
                                               inMemory: true)
    }

    /// Whether this replica holds the lease now: renewed within the last `ttl / 2`.
    public var isHeld: Bool {
        let at = renewedAt.load(ordering: .acquiring)
        return at != 0 && DispatchTime.now().uptimeNanoseconds &- at < UInt64(settings.ttl.wholeNanoseconds / 2)
    }

    /// Starts looking for, taking and renewing the lease on a thread of its own.
    public func start() {
        worker.start(name: "clusterd-lease") { [self] in
            var revision: UInt64?
            var bucket: KeyValueBucket?
            var complained = false
            while !worker.isStopping {
                do {
                    let kv = try bucket ?? JetStream(connection).keyValue(bucket: settings.bucket, create: false)
                    bucket = kv
                    revision = try step(kv, revision: revision)
                    complained = false
                } catch {
                    if !complained { logger.warning("publisher lease: the broker did not answer; retrying", metadata: ["error": "\(error)"]) }
                    complained = true
                    if revision != nil && !isHeld {
                        lose("its renewal failed for half the lease time (\(error))")
                        revision = nil
                    }
                }
                _ = wake.wait(timeout: .now() + .nanoseconds(Int(revision != nil ? settings.ttl.wholeNanoseconds / 4 : settings.poll.wholeNanoseconds)))
            }
            if revision != nil, let bucket {
                // Given up on purpose: the next replica need not wait for the lease to run out.
                renewedAt.store(0, ordering: .releasing)
                onChange(false)
                do { try bucket.delete(settings.key) } catch {
                    logger.warning("publisher lease not released; another replica takes over when it runs out", metadata: ["error": "\(error)"])
                }
                logger.notice("publisher lease released", metadata: ["instance": "\(settings.instance)"])
            }
        }
    }

    /// Stops renewing; a held lease is released (deleted).
    public func stop() {
        worker.stop { wake.signal() }
    }

    /// One look: renew a held lease, or take a free one. Returns the revision held (nil: none).
    private func step(_ kv: KeyValueBucket, revision: UInt64?) throws -> UInt64? {
        let value = Array(settings.instance.utf8)
        let started = DispatchTime.now().uptimeNanoseconds
        if let revision {
            guard let renewed = try kv.update(settings.key, value, revision: revision) else {
                lose("another replica wrote it")
                return nil
            }
            // A write conditional on our own last revision proves nobody took the lease
            // meanwhile (taking it needs the key gone, which changes the revision).
            renewedAt.store(started, ordering: .releasing)
            return renewed
        }
        // Read first: while a holder lives (the common case for a standby) a look is one round
        // trip to the broker, not a refused create and then a read — two, which under load
        // delayed seeing the holder's last renewal and so the take-over.
        guard let entry = try kv.get(settings.key) else {
            // Free (never held, released, or run out): a create only one replica can win.
            guard let taken = try kv.create(settings.key, value) else { return nil }  // another was first
            return acquired(taken, at: started)
        }
        // A holder renews every TTL/4 and stops publishing on its own once it could not renew for
        // TTL/2: the same revision for three quarters of a TTL (and a look more) on this
        // replica's own clock means it has stopped — whenever the broker gets round to letting
        // the entry run out (seconds late on a loaded machine). The entry is taken with one write
        // conditional on that very revision (not a delete and a create: one replicated write
        // less while the broker is slow, and of several standbys exactly one wins); should the
        // holder still live, its next renewal fails and it stays stopped (and were the clocks
        // to disagree, both would publish the same messages under the same ids for a moment,
        // which the streams drop).
        let now = DispatchTime.now().uptimeNanoseconds
        let since = observed.withLock { seen -> UInt64 in
            if let seen, seen.revision == entry.revision { return seen.since }
            seen = (entry.revision, now)
            return now
        }
        guard now &- since >= UInt64((settings.ttl * 3 / 4 + settings.poll).wholeNanoseconds) else { return nil }
        logger.warning("publisher lease not renewed for three quarters of its TTL: taking it over", metadata: [
            "instance": "\(settings.instance)", "holder": "\(String(decoding: entry.value, as: UTF8.self))"])
        observed.withLock { $0 = nil }
        let takenAt = DispatchTime.now().uptimeNanoseconds
        // Renewed meanwhile after all, or another standby was first: the next look sees it.
        guard let taken = try kv.update(settings.key, value, revision: entry.revision) else { return nil }
        return acquired(taken, at: takenAt)
    }

    /// The lease is this replica's now (revision `taken`, written at `at`).
    private func acquired(_ taken: UInt64, at: UInt64) -> UInt64 {
        renewedAt.store(at, ordering: .releasing)
        counters.add("lease.acquired")
        logger.notice("publisher lease acquired: this replica publishes", metadata: ["instance": "\(settings.instance)", "bucket": "\(settings.bucket)"])
        onChange(true)
        return taken
    }

    private func lose(_ reason: String) {
        renewedAt.store(0, ordering: .releasing)
        counters.add("lease.lost")
        logger.warning("publisher lease lost: this replica stops publishing", metadata: ["instance": "\(settings.instance)", "reason": "\(reason)"])
        onChange(false)
    }
}

extension Duration {
    fileprivate var wholeNanoseconds: Int64 { components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000 }
}
