import Foundation
import Health
import Model
import Testing

/// The evaluation engine on the shipped topology and checks, with time passed in.
@Suite(.timeLimit(.minutes(3))) struct HealthEngineTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func shipped() throws -> (CheckLibrary, Topology) {
        (try CheckLibrary(contentsOf: root.appendingPathComponent("config/checks.yaml").path),
         try Topology(contentsOf: root.appendingPathComponent("config/topology.yaml").path))
    }

    static let t0: Int64 = 1_800_000_000

    func engine() throws -> HealthEngine {
        let (checks, topology) = try Self.shipped()
        return HealthEngine(library: checks, topology: topology, now: Self.t0)
    }

    static func gpu(_ host: String, _ id: String, _ value: Double, at t: Int64) -> MetricSample {
        MetricSample(cluster: "alex", hostname: host, name: "nv_temp", tags: [("type", "accelerator"), ("type-id", id)], value: value, time: t)
    }

    @Test func topologyIsIndexedForLookupAndRollUp() throws {
        let (_, topology) = try Self.shipped()
        #expect(topology.placement(of: "f0117") == Placement(site: "erlangen", room: "room-1", aisle: "aisle-a", rack: "r01", device: "r01-c02"))
        #expect(topology.placement(of: "a0602") == Placement(site: "erlangen", room: "room-2", aisle: nil, rack: "g01", device: "g01-s01"))
        #expect(topology.placement(of: "f2188")?.rack == "r03")
        #expect(topology.racks["r02"]?.count == 46)
        #expect(topology.rooms["room-2"] == ["g01", "g02"])
        #expect(topology.sites["erlangen"] == ["room-1", "room-2"])
        #expect(throws: Topology.LoadError.self) { try Topology(yaml: "sites:\n  - id: s\n    rooms:\n      - name: x\n", file: "t.yaml") }
    }

    /// A chassis' blades depend on its controller; a chassis without one, or a controller on
    /// another device type, is refused with the line.
    @Test func aChassisIndexesItsBladesBehindItsController() throws {
        func rack(_ device: String) -> String {
            "sites:\n  - id: s\n    rooms:\n      - id: r\n        standalone_racks:\n          - id: k1\n            devices:\n              - \(device)\n"
        }
        let t = try Topology(yaml: rack(#"{id: ch1, type: chassis, instance: "n[1-3]", controller: ch1-cmc}"#), file: "t.yaml")
        #expect(t.chassisParents["n2"] == ["ch1-cmc"] && t.chassisParents["ch1-cmc"] == nil && t.chassisControllers == ["ch1-cmc"])
        #expect(t.placement(of: "ch1-cmc")?.device == "ch1" && t.racks["k1"] == ["n1", "n2", "n3", "ch1-cmc"])
        #expect { try Topology(yaml: rack("{id: ch1, type: chassis, instance: \"n[1-3]\"}"), file: "t.yaml") } throws: { error in
            "\(error)".contains("t.yaml:8") && "\(error)".contains("controller")
        }
        #expect(throws: Topology.LoadError.self) { try Topology(yaml: rack("{id: s1, instance: n1, controller: c}"), file: "t.yaml") }
    }

    /// A counter's rate as Prometheus' `rate()` counts it between two samples.
    @Test func aCountersRateCountsResetsAndGaps() {
        #expect(Check.rate(from: nil, to: 60, 100) == nil)                        // the first sample
        #expect(Check.rate(from: (60, 100), to: 60, 160) == nil)                  // same time
        #expect(Check.rate(from: (60, 100), to: 120, 160) == 1)                   // 60 over 60 s
        #expect(Check.rate(from: (60, 1_000), to: 120, 300) == 5)                 // a reset: 300 since it restarted
        #expect(Check.rate(from: (0, 0), to: 600, 6_000) == 10)                   // a gap: the average over it
    }

    /// The shipped counter check through the engine's series path: 25 GB/s for five minutes
    /// fires, a reset in between does not break the rate.
    @Test func theShippedInfiniBandCheckFiresOnItsRate() throws {
        let engine = try engine()
        let sample = MetricSample(cluster: "fritz", hostname: "f0117", name: "ib_recv", tags: [("type", "node")], value: 0, time: Self.t0)
        engine.register(series: 0, as: sample)
        var counter = 0.0
        for minute in 0...7 {
            let t = Self.t0 + Int64(minute) * 60
            counter = minute == 4 ? 25e9 * 60 : counter + 25e9 * 60     // minute 4: the counter restarted
            engine.ingest(series: [SeriesSample(series: 0, time: t, value: counter)], now: t)
            engine.tick(now: t)
        }
        let fired = engine.takeTransitions().filter { $0.key.check == "ib_receive_saturated" }
        #expect(fired.map(\.severity) == [.warn], "\(fired)")
        #expect(fired.first?.value == 25e9)
    }

    @Test func checksFileErrorsNameTheLine() throws {
        let bad = "checks:\n  - id: a\n    source: {metric: x}\n    rules: [{op: '>', value: 1, severity: WARN}]\n    fro: 1m\n"
        #expect { try CheckLibrary(yaml: bad, file: "c.yaml") } throws: { ($0 as? CheckLibrary.LoadError)?.description.hasPrefix("c.yaml:5: unknown key \"fro\"") == true }
        #expect(throws: CheckLibrary.LoadError.self) { try CheckLibrary(yaml: "checks:\n  - id: a\n    source: {metric: x}\n", file: "c.yaml") }
        let (checks, _) = try Self.shipped()
        #expect(checks.checks.map(\.id) == ["gpu_temperature", "cpu_load", "slurm_state", "node_silent", "black_hole", "pdu_current", "ib_receive_saturated"])
        #expect(checks.checks.filter(\.rate).map(\.id) == ["ib_receive_saturated"])
        #expect(throws: CheckLibrary.LoadError.self) {
            try CheckLibrary(yaml: "checks:\n  - id: a\n    source: {metric: {name: x, rate: often}}\n    rules: [{op: '>', value: 1, severity: WARN}]\n", file: "c.yaml")
        }
    }

    @Test func hotGPUFiresAfterForAndResolvesAfterKeepFiringFor() throws {
        let e = try engine()
        e.ingest(Self.gpu("a0603", "00000000:0E:00.0", 96, at: Self.t0), now: Self.t0)
        e.tick(now: Self.t0 + 30)
        #expect(e.takeTransitions().isEmpty)                    // pending
        e.ingest(Self.gpu("a0603", "00000000:0E:00.0", 97, at: Self.t0 + 60), now: Self.t0 + 60)
        let fired = e.takeTransitions()
        #expect(fired.count == 1)
        let f = try #require(fired.first)
        #expect(f.status == .firing && f.severity == .crit && f.startsAt == Self.t0)
        #expect(f.key == AlertKey(check: "gpu_temperature", cluster: "alex", entity: "a0603", component: "00000000:0E:00.0"))
        #expect(f.placement?.rack == "g01" && f.placement?.room == "room-2" && f.placement?.site == "erlangen")
        #expect(f.summary == "GPU 00000000:0E:00.0 of a0603 at 97 °C (CRIT)")
        // Back to normal: held for keep_firing_for (2m), then exactly one resolve.
        e.ingest(Self.gpu("a0603", "00000000:0E:00.0", 60, at: Self.t0 + 70), now: Self.t0 + 70)
        e.tick(now: Self.t0 + 150)
        #expect(e.takeTransitions().isEmpty)
        e.tick(now: Self.t0 + 190)
        let resolved = e.takeTransitions()
        #expect(resolved.map(\.status) == [.resolved])
        #expect(resolved.first?.endsAt == Self.t0 + 190 && resolved.first?.startsAt == Self.t0)
        // The resolve does not repeat the firing text (issue 22 #6).
        #expect(resolved.first?.summary == "GPU temperature on a0603 00000000:0E:00.0 resolved (was CRIT, now 60)", "\(resolved.first?.summary ?? "")")
        e.tick(now: Self.t0 + 300)
        #expect(e.takeTransitions().isEmpty)
    }

    @Test func escalationDoesNotRestartTheForClock() throws {
        let e = try engine()
        e.ingest(Self.gpu("a0603", "0", 90, at: Self.t0), now: Self.t0)           // WARN, pending
        e.ingest(Self.gpu("a0603", "0", 96, at: Self.t0 + 40), now: Self.t0 + 40) // CRIT, still pending
        e.tick(now: Self.t0 + 60)
        let t = e.takeTransitions()
        #expect(t.map(\.severity) == [.crit])
        #expect(t.first?.startsAt == Self.t0)
        // Firing: de-escalation to WARN is a transition of the same alert.
        e.ingest(Self.gpu("a0603", "0", 88, at: Self.t0 + 70), now: Self.t0 + 70)
        #expect(e.takeTransitions().map(\.severity) == [.warn])
    }

    @Test func componentsRollUpToNodeRackRoomAndSite() throws {
        let e = try engine()
        for (id, v) in [("0", 96.0), ("1", 50.0)] { e.ingest(Self.gpu("a0603", id, v, at: Self.t0), now: Self.t0) }
        e.tick(now: Self.t0 + 60)
        #expect(e.severity(ofHost: "a0603") == .warn)           // one CRIT GPU < threshold 2
        e.ingest(Self.gpu("a0603", "1", 99, at: Self.t0 + 61), now: Self.t0 + 61)
        e.tick(now: Self.t0 + 121)
        #expect(e.severity(ofHost: "a0603") == .crit)
        #expect(e.severity(ofRack: "g01") == .crit)
        #expect(e.severity(ofRack: "g02") == .ok)
        #expect(e.severity(ofRoom: "room-2") == .crit)
        #expect(e.severity(ofRoom: "room-1") == .ok)
        #expect(e.severity(ofSite: "erlangen") == .crit)
    }

    @Test func silentNodesBecomeUnknownAndARestartRaisesNoStorm() throws {
        let (checks, topology) = try Self.shipped()
        let e = HealthEngine(library: checks, topology: topology, now: Self.t0)
        e.observe(NodeStatus(cluster: "fritz", hostname: "f0101", flags: ["idle"]), now: Self.t0 + 500)
        e.tick(now: Self.t0 + 601)
        // Hosts of the topology that never reported are not silent: nothing pages on a quiet start.
        #expect(e.takeTransitions().isEmpty)
        e.tick(now: Self.t0 + 1101)
        let unknown = e.takeTransitions()
        #expect(unknown.map(\.key.entity) == ["f0101"] && unknown.allSatisfy { $0.key.check == "node_silent" && $0.severity == .unknown })
        // A restarted engine expects the hosts that reported before, counted from its own start.
        let restarted = HealthEngine(library: checks, topology: topology, now: Self.t0 + 700)
        restarted.expect(host: "f0102", cluster: "fritz")
        restarted.tick(now: Self.t0 + 1200)
        #expect(restarted.takeTransitions().isEmpty)
        restarted.tick(now: Self.t0 + 1301)
        #expect(restarted.takeTransitions().map(\.key.entity) == ["f0102"])
        // A metric silent longer than its freshness becomes UNKNOWN (after `for`).
        e.ingest(Self.gpu("a0603", "0", 50, at: Self.t0 + 601), now: Self.t0 + 601)
        e.tick(now: Self.t0 + 601 + 601)
        e.tick(now: Self.t0 + 601 + 661)
        #expect(e.takeTransitions().contains { $0.key.check == "gpu_temperature" && $0.severity == .unknown && $0.value == nil })
    }

    @Test func flappingIsMarkedOnceInsteadOfAStorm() throws {
        let checks = try CheckLibrary(yaml: """
            checks:
              - id: flappy
                source: {metric: temp}
                rules: [{op: ">", value: 80, severity: CRIT}]
                flapping: {window: 21, high: 30, low: 25}
            """, file: "f.yaml")
        let e = HealthEngine(library: checks, topology: Topology(), now: Self.t0)
        var all: [HealthTransition] = []
        for i in 0..<60 {
            let t = Self.t0 + Int64(i) * 10
            e.ingest(MetricSample(cluster: "c", hostname: "h", name: "temp", value: i % 2 == 0 ? 90 : 50, time: t), now: t)
            all += e.takeTransitions()
        }
        #expect(all.count <= 8)
        #expect(all.last?.flapping == true && all.last?.status == .firing)
        #expect(e.suppressedByFlapping > 40)
        // It calms down: one transition ends the flapping (resolved, as the value is fine).
        for i in 60..<90 {
            let t = Self.t0 + Int64(i) * 10
            e.ingest(MetricSample(cluster: "c", hostname: "h", name: "temp", value: 50, time: t), now: t)
            all += e.takeTransitions()
        }
        #expect(all.last?.status == .resolved && all.last?.flapping == false)
    }

    @Test func slurmStatesMapToSeverities() throws {
        let e = try engine()
        func status(_ flags: [String], _ t: Int64) -> [Severity] {
            e.observe(NodeStatus(cluster: "fritz", hostname: "f0104", flags: flags), now: t)
            return e.takeTransitions().map { $0.status == .resolved ? .ok : $0.severity }
        }
        #expect(status(["idle"], Self.t0) == [])
        #expect(status(["drain", "idle"], Self.t0 + 1) == [.crit])
        #expect(status(["idle"], Self.t0 + 2) == [.ok])
        #expect(status(["mixed"], Self.t0 + 3) == [])              // overridden to OK in checks.yaml
        #expect(status(["idle", "not_responding"], Self.t0 + 4) == [.crit])
        #expect(status(["down"], Self.t0 + 5) == [])               // still CRIT: no new transition
        #expect(status(["future"], Self.t0 + 6) == [.unknown])     // unlisted word
        #expect(status(["maint", "idle"], Self.t0 + 7) == [.warn])
    }

    @Test func blackHoleNeedsShortFailuresFromTwoUsers() throws {
        let e = try engine()
        func exits(_ users: [String], host: String, runtime: Int64 = 30, state: String = "failed") -> [HealthTransition] {
            for (n, user) in users.enumerated() {
                e.jobEnded(JobExit(cluster: "fritz", jobId: Int64(n), user: user, hosts: [host, "f0150"], state: state,
                                   runtime: runtime, stopTime: Self.t0 + Int64(n)), now: Self.t0 + Int64(n))
            }
            return e.takeTransitions().filter { $0.key.check == "black_hole" && $0.key.entity == host }
        }
        #expect(exits(["u1", "u1", "u1", "u1", "u1", "u1"], host: "f0110").isEmpty)     // one user
        #expect(exits(["u1", "u2", "u1", "u2", "u1"], host: "f0111", runtime: 3600).isEmpty)  // long jobs
        #expect(exits(["u1", "u2", "u1", "u2", "u1"], host: "f0112", state: "timeout").isEmpty)
        let alerts = exits(["a", "b", "a", "b"], host: "f0113")
        #expect(alerts.isEmpty)                                                             // four failures
        e.jobEnded(JobExit(cluster: "fritz", jobId: 99, user: "c", hosts: ["f0113"], state: "node_fail", runtime: 5, stopTime: Self.t0 + 9), now: Self.t0 + 9)
        let fired = e.takeTransitions().filter { $0.key.check == "black_hole" }
        #expect(fired.map(\.key.entity) == ["f0113"])
        #expect(fired.first?.severity == .crit && fired.first?.value == 5)
        // f0150 shared every job: u1 alone there in the first round, then more users → fired too.
        #expect(e.severity(ofHost: "f0150") == .crit)
        // The failures age out of the window; keep_firing_for (1h) then resolves it.
        e.tick(now: Self.t0 + 3600 + 10)
        e.tick(now: Self.t0 + 7200 + 20)
        #expect(e.takeTransitions().filter { $0.key.entity == "f0113" && $0.key.check == "black_hole" }.map(\.status) == [.resolved])
    }
}
