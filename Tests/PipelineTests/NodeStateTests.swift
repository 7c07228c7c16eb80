import Foundation
import Intake
import LineProtocol
import Model
import Nodes
import Pipeline
import Testing

/// The node-state stage without a broker: reduction, flags, partial batches, change points,
/// retention.
@Suite(.timeLimit(.minutes(3))) struct NodeStateTests {
    @Test(arguments: [
        (["ALLOCATED"], SchedulerState.allocated), (["IDLE"], .idle), (["MIXED"], .mixed), (["DOWN"], .down),
        (["IDLE", "DRAIN"], .idle), (["MIXED", "DRAIN"], .mixed), (["DRAIN"], .unknown), (["MIXED", "RESERVED"], .reserved),
        (["DOWN", "DRAIN", "NOT_RESPONDING"], .down), (["ALLOCATED", "COMPLETING"], .allocated), (["PLANNED"], .unknown),
        (["IDLE", "DOWN"], .down), (["DOWN", "IDLE"], .down), (["ALLOCATED", "RESERVED"], .allocated), (["RESERVED", "IDLE"], .reserved),
        (["RESERVED", "DOWN"], .reserved), (["DOWN", "MIXED"], .down), (["IDLE", "MIXED"], .idle), (["ALLOCATED", "DOWN"], .allocated),
        (["mixed"], .mixed), (["Idle"], .idle), ([], .unknown), (["IDLE+DRAIN"], .unknown), (["alloc"], .unknown),
        (["MAINTENANCE", "RESERVED"], .reserved), (["FAIL", "ALLOCATED"], .allocated), (["POWERED_DOWN", "IDLE"], .idle),
    ])
    func reductionFollowsCCBackendPriorities(states: [String], expected: SchedulerState) {
        #expect(SchedulerState.reduce(states) == expected)
    }

    /// Issue 22 #9: sinfo's short forms gave `unknown`, so `nodes.list state=allocated` missed them.
    @Test func sinfoShortFormsGiveTheirState() throws {
        for (states, expected) in [(["alloc$"], SchedulerState.allocated), (["mix*"], .mixed), (["idle~"], .idle),
                                   (["IDLE+DRAIN"], .idle), (["down*"], .down), (["resv"], .reserved), (["drain"], .unknown)] {
            #expect(NodeReport(hostname: "h", states: states).schedulerState == expected, "\(states)")
        }
        let env = try TestEnvironment()
        try env.sendNodes(#"nodestate event="{\"cluster\":\"fritz\",\"nodes\":[{\"hostname\":\"f0101\",\"states\":[\"alloc$\"]},{\"hostname\":\"f0102\",\"states\":[\"mix*\"]}]}""#)
        #expect(try env.query("SELECT n.hostname, s.node_state FROM node_state s JOIN node n ON n.id = s.node_id ORDER BY n.hostname").map { Array($0.prefix(2)) } == [["f0101", "allocated"], ["f0102", "mixed"]])
    }

    @Test func slurmFlagsAreNormalised() {
        #expect(SlurmState(["IDLE", "DRAIN"]).flags == ["drain", "idle"])
        #expect(SlurmState(["idle*"]).flags == ["idle", "not_responding"])
        #expect(SlurmState(["IDLE+DRAIN"]).flags == ["drain", "idle"])
        #expect(SlurmState(["alloc", "comp"]).flags == ["allocated", "completing"])
        #expect(SlurmState(["idle~", "mix$", "drng@"]).flags == ["draining", "idle", "maint", "mixed", "powered_down", "reboot_requested"])
        #expect(SlurmState(["NOT_RESPONDING", "POWERED_DOWN", "MAINTENANCE", "REBOOT_ISSUED"]).flags
            == ["maint", "not_responding", "powered_down", "reboot_issued"])
        #expect(SlurmState(["DOWN", "DOWN"]).description == "down")
    }

    static func line(_ cluster: String, _ nodes: String) -> String {
        #"nodestate event="{\"cluster\":\"\#(cluster)\",\"nodes\":[\#(nodes)]}" 1718001260000000000"#
    }

    static func node(_ host: String, _ states: String, extra: String = "") -> String {
        #"{\"hostname\":\"\#(host)\",\"states\":[\#(states)],\"cpusAllocated\":8\#(extra)}"#
    }

    @Test func oneBadEntryIsRejectedAloneAndNamed() throws {
        let env = try TestEnvironment()
        let body = Self.line("fritz", [
            Self.node("f0101", #"\"IDLE\""#),
            Self.node("f0102", #"\"IDLE\""#, extra: #",\"gpuCount\":1"#),
            Self.node("f0103", #"\"MIXED\""#, extra: #",\"jobsRunning\":-1"#),
            Self.node("z9999", #"\"IDLE\""#),
            Self.node("f0104", #"\"DOWN\",\"DRAIN\""#),
        ].joined(separator: ","))
        let result = try env.sendNodes(body)
        #expect(TestEnvironment.statuses(result) == ["changed", "rejected:unknown_key", "rejected:invalid_value", "rejected:unknown_host", "changed"])
        let letters = try env.deadLetters(stage: "nodes")
        #expect(letters.count == 3)
        #expect(letters.map { $0["reason"]?.stringValue ?? "" }.allSatisfy { $0.contains("nodes[") })
        #expect(letters[0]["reason"]?.stringValue?.contains("gpuCount") == true)
        #expect(letters[2]["reason"]?.stringValue?.contains("z9999") == true)
        #expect(try env.query("SELECT hostname FROM node ORDER BY hostname").map { $0[0] } == ["f0101", "f0104"])
        #expect(env.observed.all.map(\.hostname) == ["f0101", "f0104"])
        #expect(env.observed.all[1].slurm.flags == ["down", "drain"])
    }

    @Test func envelopeErrorsRejectTheLineAndOtherLinesStillApply() throws {
        let env = try TestEnvironment()
        let body = [
            Self.line("nowhere", Self.node("f0101", #"\"IDLE\""#)),
            #"nodestate event="{\"cluster\":\"fritz\",\"nodes\":[],\"extra\":1}" 1"#,
            "nodestate event=\"{broken\" 1",
            Self.line("fritz", Self.node("f0101", #"\"ALLOCATED\""#)),
        ].joined(separator: "\n")
        let result = try env.sendNodes(body)
        #expect(TestEnvironment.statuses(result) == ["rejected:unknown_cluster", "rejected:unknown_key", "rejected:invalid_json", "changed"])
    }

    @Test func historyKeepsChangePointsWithLastSeenAndRetentionKeepsTheNewest() throws {
        let env = try TestEnvironment()
        let idle = Self.line("fritz", Self.node("f0101", #"\"IDLE\""#))
        let drained = Self.line("fritz", Self.node("f0101", #"\"IDLE\",\"DRAIN\""#))
        #expect(TestEnvironment.statuses(try env.sendNodes(idle, now: 1000)) == ["changed"])
        #expect(TestEnvironment.statuses(try env.sendNodes(idle, now: 1060)) == ["unchanged"])
        #expect(TestEnvironment.statuses(try env.sendNodes(drained, now: 1120)) == ["changed"])
        #expect(TestEnvironment.statuses(try env.sendNodes(drained, now: 1180)) == ["unchanged"])
        let other = Self.line("fritz", Self.node("f0102", #"\"MIXED\""#))
        try env.sendNodes(other, now: 1000)
        let history = try env.nodes.stage.history(cluster: "fritz", hostname: "f0101")
        #expect(history.map(\.since) == [1000, 1120])
        #expect(history.map(\.lastSeen) == [1060, 1180])
        #expect(history.map(\.state) == [.idle, .idle])
        #expect(history.map(\.flags) == ["idle", "drain+idle"])
        // Everything last seen before 1100 goes, except each node's newest row.
        #expect(try env.nodes.stage.prune(before: 1100) == 1)
        #expect(try env.nodes.stage.history(cluster: "fritz", hostname: "f0101").map(\.since) == [1120])
        #expect(try env.nodes.stage.history(cluster: "fritz", hostname: "f0102").count == 1)
        #expect(try env.nodes.stage.current(cluster: "fritz", hostname: "f0101")?.cpusAllocated == 8)
    }

    /// Issue 21 #2: each refused entry's letter quoted the whole line, and every entry had
    /// one: 735 kB with 15,000 bad entries wrote 1.7 GB. Letters now quote their entry and a
    /// message writes at most 100 of them plus one summary; the bytes written (dead-letter
    /// rows and outbox rows) stay below the input's size.
    @Test func aMessageOfManyBadEntriesWritesBoundedDeadLetters() throws {
        let env = try TestEnvironment()
        let entries = (0..<15_000).map { i in #"{\"hostname\":\"f0\#(101 + i % 80)\",\"states\":[\"IDLE\"],\"cpuAllocated\":\#(i)}"# }
        let body = #"nodestate event="{\"cluster\":\"fritz\",\"nodes\":[\#(entries.joined(separator: ","))]}""#
        let result = try env.sendNodes(body)
        #expect(result["eventsTotal"] == .integer(15_000))
        let letters = try env.query("SELECT count(*), sum(length(raw) + length(reason)) FROM dead_letter")[0]
        #expect(letters[0] == String(StageProcessor.maxLettersPerMessage + 1))
        let outboxBytes = try env.query("SELECT sum(length(payload)) FROM outbox")[0][0]
        let written = (Int(letters[1]) ?? 0) + (Int(outboxBytes) ?? 0)
        #expect(written < body.utf8.count / 4, "\(written) bytes written for \(body.utf8.count) bytes of input")
        let summary = try env.query("SELECT reason FROM dead_letter WHERE code = 'more_rejections'")
        #expect(summary.first?.first?.contains("14900 more entries") == true, "\(summary)")
        #expect(env.counters["dead_letters.nodes.unknown_key"] == 15_000)
        print("node-state amplification: \(written) bytes written for \(body.utf8.count) bytes of input (\(String(format: "%.3f", Double(written) / Double(body.utf8.count))) per byte)")
    }
}
