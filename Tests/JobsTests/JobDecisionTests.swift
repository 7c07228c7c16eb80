import Foundation
import Jobs
import Model
import Testing

/// The job rules as pure decisions: the event and what the tables hold in, what to write out.
@Suite(.timeLimit(.minutes(1))) struct JobDecisionTests {
    static let clusters: ClusterRegistry = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return ClusterRegistry([try! ClusterConfig(contentsOf: root.appendingPathComponent("config/clusters/fritz/cluster.json").path)])
    }()

    static func start(_ id: Int64 = 7, at time: Int64 = 1_700_000_000) -> JobStart {
        var s = JobStart(jobId: id, cluster: "fritz")
        s.user = "u"
        s.numNodes = 1
        s.resources = [JobResource(hostname: "f0101")]
        s.startTime = time
        return s
    }

    func decide(_ start: JobStart, _ known: StartContext = StartContext()) throws -> StartDecision {
        try JobDecision.start(start, known: known, clusters: Self.clusters, duplicateWindow: 86_400)
    }

    @Test func aNewStartIsInsertedAndItsRedeliveryChangesNothing() throws {
        let start = Self.start()
        guard case .insert(let sub, let event, nil, nil) = try decide(start) else { Issue.record("not an insert"); return }
        #expect(sub == "main")
        #expect(try decide(start, StartContext(sameIdentity: (id: 3, startEvent: event))) == .alreadyStarted(id: 3))
        var changed = start
        changed.user = "other"
        #expect(throws: JobRejection.self) { try decide(changed, StartContext(sameIdentity: (id: 3, startEvent: event))) }
        #expect(throws: JobRejection.self) { try decide(start, StartContext(recentStartTime: start.startTime - 60)) }
    }

    @Test func aStopWithoutItsJobIsHeldAndAppliesWhenTheStartComes() throws {
        let stop = JobStop(jobId: 7, cluster: "fritz", state: .failed, stopTime: 1_700_000_600)
        guard case .hold(let event, alreadyHeld: false) = try JobDecision.stop(stop, target: nil, heldAlready: false) else { Issue.record("not held"); return }
        #expect(try JobDecision.stop(stop, target: nil, heldAlready: true) == .hold(stopEvent: event, alreadyHeld: true))
        guard case .insert(_, _, heldStop: 9, thenStop: .stop(let record, _)?) = try decide(Self.start(), StartContext(heldStop: (id: 9, stop: stop))) else {
            Issue.record("the held stop was not applied"); return
        }
        #expect(record.state == .failed)
        #expect(record.duration == 600)
    }

    @Test func stopsFollowTheRulesOfTheStoredJob() throws {
        let running = JobRecord(id: 5, start: Self.start(), subCluster: "main", state: .running, duration: 0, monitoringStatus: 1)
        let stop = JobStop(jobId: 7, stopTime: 1_700_000_100)
        guard case .stop(let stopped, let event) = try JobDecision.stop(stop, target: StopTarget(record: running, stopEvent: nil), heldAlready: false) else {
            Issue.record("not stopped"); return
        }
        #expect(stopped.state == .completed && stopped.duration == 100)
        #expect(try JobDecision.stop(stop, target: StopTarget(record: stopped, stopEvent: event), heldAlready: false) == .alreadyStopped(id: 5))
        var other = stop
        other.state = .failed
        #expect(throws: JobRejection.self) { try JobDecision.stop(other, target: StopTarget(record: stopped, stopEvent: event), heldAlready: false) }
        #expect(throws: JobRejection.self) {
            try JobDecision.stop(JobStop(jobId: 7, stopTime: 1_699_999_000), target: StopTarget(record: running, stopEvent: nil), heldAlready: false)
        }
        #expect(throws: JobRejection.self) { try JobDecision.notInTheFuture("stopTime", 1_700_200_000, now: 1_700_000_000) }
    }
}
