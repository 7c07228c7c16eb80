import Bus
import BusTestSupport
import Config
import Foundation
import Logging
@testable import Pipeline
import Store
import Synchronization
import Testing

/// Instances that own disjoint sets of HPC clusters (`intake.clusters`, issue 19): each
/// applies only its clusters' job events, in order, answers only for them, and reads either
/// the plain subject (every instance reads everything and leaves the rest) or the per-cluster
/// subjects `clusterd publish --per-cluster-subject` sends (the broker delivers each only its own).
@Suite(.serialized, .timeLimit(.minutes(3))) final class PartitionBusTests: BusSuite {
    let fixture: BusFixture

    init() throws {
        fixture = try BusFixture("clusterd-partition")
    }

    func makeService(owning cluster: String, perCluster: Bool) -> ClusterdService {
        var config = ClusterdConfig()
        config.nats.servers = [server.url]
        config.storage.dataDir = directory.appendingPathComponent(cluster).path
        config.jobs.clusterFiles = ["fritz", "alex"].map { Repository.path("config/clusters/\($0)/cluster.json") }
        config.observability.listen = ""
        config.intake.clusters = [cluster]
        config.intake.perClusterSubjects = perCluster
        var logger = Logger(label: "partition-\(cluster)")
        logger.logLevel = .critical
        return ClusterdService(config: config, logger: logger)
    }

    func scalar(_ cluster: String, _ sql: String) -> Int {
        guard let db = try? Database(path: directory.appendingPathComponent("\(cluster)/clusterd.db").path, readOnly: true) else { return 0 }
        return Int((try? db.prepare(sql).first { $0.int(0) }) ?? 0)
    }

    static func event(_ function: String, job: Int, cluster: String) -> String {
        let host = cluster == "fritz" ? "f0101" : "a0101"
        return function == "start_job"
            ? #"job,function=start_job event="{\"jobId\":\#(job),\"user\":\"u\",\"project\":\"p\",\"cluster\":\"\#(cluster)\",\"numNodes\":1,\"resources\":[{\"hostname\":\"\#(host)\"}],\"startTime\":\#(1_700_000_000 + job)}" 1"#
            : #"job,function=stop_job event="{\"jobId\":\#(job),\"cluster\":\"\#(cluster)\",\"jobState\":\"completed\",\"stopTime\":\#(1_700_000_050 + job)}" 1"#
    }

    @Test(arguments: [false, true])
    func eachInstanceAppliesAndAnswersOnlyItsClusters(perClusterSubjects: Bool) async throws {
        let services = [makeService(owning: "fritz", perCluster: perClusterSubjects), makeService(owning: "alex", perCluster: perClusterSubjects)]
        for s in services { try s.start() }
        defer { for s in services { s.stop() } }
        let client = try BusConnection(ConnectionOptions(servers: [server.url], name: "hook"))
        defer { client.close() }
        let results = Mutex<[String: Int]>([:])
        let sub = try client.subscribe("clusterd.result.jobs.>") { m in results.withLock { $0[m.subject, default: 0] += 1 } }
        try client.flush()
        let js = try JetStream(client)
        // Both clusters' jobs interleaved; every start directly followed by its stop, so a
        // broken per-job order would hold stops (and leave jobs running).
        let jobs = 100
        for job in 1...jobs {
            let cluster = job % 2 == 0 ? "fritz" : "alex"
            let subject = perClusterSubjects ? "cc.job.event.\(cluster)" : "cc.job.event"
            for function in ["start_job", "stop_job"] {
                _ = try js.publish(BusMessage(subject: subject, data: Array(Self.event(function, job: job, cluster: cluster).utf8)),
                                   messageID: "\(function)-\(job)", retries: 20)
            }
        }
        let deadline = Date().addingTimeInterval(60)
        while (scalar("fritz", "SELECT count(*) FROM job WHERE job_state = 'completed'") < jobs / 2
               || scalar("alex", "SELECT count(*) FROM job WHERE job_state = 'completed'") < jobs / 2
               || results.withLock({ $0.count }) < 2 * jobs) && Date() < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        for (cluster, service) in zip(["fritz", "alex"], services) {
            #expect(scalar(cluster, "SELECT count(*) FROM job") == jobs / 2)
            #expect(scalar(cluster, "SELECT count(*) FROM job WHERE cluster = '\(cluster)' AND job_state = 'completed' AND duration = 50") == jobs / 2)
            #expect(scalar(cluster, "SELECT count(*) FROM dead_letter") == 0)
            // Plain subject: each reads everything and leaves the other's half; per cluster:
            // the broker delivers only its own.
            #expect(service.counters["jobs.not_owned"] == (perClusterSubjects ? 0 : jobs))
            #expect(service.readiness().isEmpty, "\(service.readiness())")  // its own consumers are the ones checked
        }
        // One answer per event, from its owner.
        #expect(results.withLock { $0.count } == 2 * jobs)
        #expect(results.withLock { $0.values.allSatisfy { $0 == 1 } })
        _ = sub
    }
}
