import Model

/// Evaluates the checks library on metric values, node states, job exits and the passing of
/// time, and turns the results into alert transitions: pending before `for`, held by
/// `keep_firing_for`, UNKNOWN when silent, marked flapping (Icinga's percent state change)
/// instead of re-notifying, and rolled up node → rack → room → site. Pure: no I/O, the
/// caller passes the time; owned by one thread.
public final class HealthEngine {
    /// The checks (replaced by ``reload(library:topology:now:)``).
    public private(set) var library: CheckLibrary
    /// Where hosts are (replaced by ``reload(library:topology:now:)``).
    public private(set) var topology: Topology
    /// When evaluation started: silence and freshness allowances count from here, so a
    /// restart never raises a storm of UNKNOWN alerts.
    public let startedAt: Int64

    struct TargetState {
        var checkIndex: Int
        var raw: Severity = .ok
        var value: Double?
        var lastInput: Int64
        var pendingSince: Int64?
        var firing: Severity?
        var firingSince: Int64 = 0
        var lastProblemAt: Int64 = 0
        var history: [Severity] = []
        var flapping = false
        var published: Severity?
        var publishedFlapping = false
        var publishedSince: Int64 = 0
    }

    var byMetric: [String: [Int]] = [:]
    var slurmChecks: [Int] = []
    var silenceChecks: [Int] = []
    var exitChecks: [Int] = []
    var states = TargetTable()
    var byEntity: [String: Set<AlertKey>] = [:]
    /// Hosts that reported or are expected to (their slot, in order of first mention): name,
    /// cluster, and when they last reported (nil: not yet; the engine's start for a host
    /// expected after a restart).
    var seenHost: [String] = [], seenCluster: [String] = [], seenAt: [Int64?] = []
    var hostSlot: [String: Int] = [:]
    /// Series the metric path sends by number: their identity, and what a value of theirs
    /// updates — host slot, cluster, check targets — worked out once per series (the
    /// targets again on reload). `seriesHost` is -1 for a number not registered.
    var seriesSamples: [MetricSample?] = []
    var seriesHost: [Int] = [], seriesCluster: [String] = [], seriesTargets: [[PlanTarget]] = []

    struct SeriesPlan {
        var slot: Int
        var cluster: String
        var targets: [PlanTarget]
    }

    struct PlanTarget {
        var check: Int
        var key: AlertKey
        /// The key's slot in `states` once it has one.
        var slot = -1
        /// The series' previous sample, for a counter check (``Check/rate``).
        var last: (time: Int64, value: Double)?
    }
    var failures: [Int: [String: [(time: Int64, user: String, cluster: String)]]] = [:]
    var transitions: [HealthTransition] = []
    /// Transitions not notified because their target was flapping.
    public private(set) var suppressedByFlapping = 0

    /// An engine for `library` over `topology`, starting at `now`.
    public init(library: CheckLibrary, topology: Topology, now: Int64) {
        self.library = library
        self.topology = topology
        startedAt = now
        indexChecks()
    }

    func indexChecks() {
        byMetric = [:]
        slurmChecks = []
        silenceChecks = []
        exitChecks = []
        for (i, check) in library.checks.enumerated() {
            switch check.source {
            case .metric(let name, _, _): byMetric[name, default: []].append(i)
            case .slurmState: slurmChecks.append(i)
            case .silence: silenceChecks.append(i)
            case .jobExits: exitChecks.append(i)
            }
        }
    }

    /// Takes a new checks library and topology (a configuration reload) at `now`. A target
    /// whose check is still there (same id and scope) keeps its state, so nothing fires
    /// again; the new thresholds apply from its next input. A firing alert of a removed
    /// check is resolved, since nothing would ever resolve it otherwise.
    public func reload(library new: CheckLibrary, topology newTopology: Topology, now: Int64) {
        let index = Dictionary(new.checks.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { a, _ in a })
        func successor(_ old: Int) -> Int? {
            guard let i = index[library.checks[old].id], new.checks[i].scope == library.checks[old].scope else { return nil }
            return i
        }
        var kept = TargetTable()
        for (key, st) in zip(states.keys, states.values).sorted(by: { $0.0 < $1.0 }) {
            if let i = successor(st.checkIndex) {
                var moved = st
                moved.checkIndex = i
                kept[key] = moved
            } else if let last = st.published {
                // Resolved with the old check and topology, which still describe it.
                var gone = st
                gone.published = nil
                emit(key, gone, check: library.checks[st.checkIndex], status: .resolved, severity: last, now: now)
            }
        }
        var keptFailures: [Int: [String: [(time: Int64, user: String, cluster: String)]]] = [:]
        for (i, hosts) in failures { if let j = successor(i) { keptFailures[j] = hosts } }
        library = new
        topology = newTopology
        states = kept
        failures = keptFailures
        byEntity = [:]
        for key in states.keys { byEntity[key.entity, default: []].insert(key) }
        indexChecks()
        seriesTargets = seriesSamples.map { $0.map { plan(for: $0).targets } ?? [] }
    }

    /// Metric names some check looks at (others can be skipped cheaply).
    public var watchedMetrics: Set<String> { library.metricNames }

    /// Takes over alerts that were firing before a restart: they are not fired again, and
    /// their resolve will come when the problem is gone.
    /// Marks `host` as one that has reported before (clusterd's node and metric records):
    /// silence checks expect it to report again, counted from the engine's start.
    public func expect(host: String, cluster: String) {
        let i = slot(of: host, cluster: cluster)
        if seenAt[i] == nil { seenAt[i] = startedAt }
    }

    /// `host`'s place in `seen` (added, not yet seen, when new).
    func slot(of host: String, cluster: String) -> Int {
        if let i = hostSlot[host] { return i }
        seenHost.append(host)
        seenCluster.append(cluster)
        seenAt.append(nil)
        hostSlot[host] = seenHost.count - 1
        return seenHost.count - 1
    }

    public func restore(_ alerts: [RestoredAlert]) {
        let index = Dictionary(library.checks.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { a, _ in a })
        for a in alerts {
            guard let i = index[a.key.check] else { continue }
            var st = TargetState(checkIndex: i, raw: a.severity, lastInput: startedAt)
            st.firing = a.severity
            st.firingSince = a.startsAt
            st.lastProblemAt = a.lastProblemAt
            st.published = a.severity
            st.publishedFlapping = a.flapping
            st.publishedSince = a.startsAt
            states[a.key] = st
            byEntity[a.key.entity, default: []].insert(a.key)
            // A restored silence alert's host is expected, so the alert can resolve when it reports.
            if case .silence = library.checks[i].source { expect(host: a.key.entity, cluster: a.key.cluster) }
        }
    }

    /// Evaluates a metric value received at `now`.
    public func ingest(_ sample: MetricSample, now: Int64) {
        apply(plan(for: sample), sample.value, now: now)
    }

    /// Makes `series` (the metric store's number) known as the series of `sample`, for
    /// ``ingest(series:value:now:)``.
    public func register(series: Int32, as sample: MetricSample) {
        let i = Int(series)
        if i >= seriesSamples.count {
            let more = i + 1 - seriesSamples.count
            seriesSamples.append(contentsOf: repeatElement(nil, count: more))
            seriesHost.append(contentsOf: repeatElement(-1, count: more))
            seriesCluster.append(contentsOf: repeatElement("", count: more))
            seriesTargets.append(contentsOf: repeatElement([], count: more))
        }
        let plan = plan(for: sample)
        seriesSamples[i] = sample
        seriesHost[i] = plan.slot
        seriesCluster[i] = plan.cluster
        seriesTargets[i] = plan.targets
    }

    /// Evaluates values of registered series received at `now`, in order (the metric path's
    /// steady state, one call per message: no strings, no lookups by name; an unregistered
    /// series is ignored); `reported` are series whose values no check needs, for their
    /// hosts only (alive at `now`).
    public func ingest(series samples: [SeriesSample], reported: [Int32] = [], now: Int64) {
        // The per-sample state as locals (no exclusivity check per sample), put back after.
        let hosts = seriesHost, clusters = seriesCluster
        var at: [Int64?] = [], seenClusters: [String] = []
        swap(&at, &seenAt)
        swap(&seenClusters, &seenCluster)
        defer {
            swap(&at, &seenAt)
            swap(&seenClusters, &seenCluster)
        }
        for number in reported {
            let i = Int(number)
            guard i < hosts.count, hosts[i] >= 0 else { continue }
            let slot = hosts[i]
            if seenClusters[slot] != clusters[i] { seenClusters[slot] = clusters[i] }
            at[slot] = now
        }
        for s in samples {
            let i = Int(s.series)
            guard i < hosts.count, hosts[i] >= 0 else { continue }
            let slot = hosts[i]
            if seenClusters[slot] != clusters[i] { seenClusters[slot] = clusters[i] }
            at[slot] = now
            if !seriesTargets[i].isEmpty { evaluateTargets(of: i, value: s.value, time: s.time, now: now) }
        }
    }

    private func evaluateTargets(of series: Int, value sampled: Double, time: Int64, now: Int64) {
        for j in seriesTargets[series].indices {
            let t = seriesTargets[series][j]
            var value = sampled
            if library.checks[t.check].rate {
                // A counter: the rule sees its rate since this series' previous sample.
                if let last = t.last, time <= last.time { continue }  // older or same time: nothing new
                seriesTargets[series][j].last = (time, sampled)
                guard let rate = Check.rate(from: t.last, to: time, sampled) else { continue }
                value = rate
            }
            var slot = t.slot
            if slot < 0 {
                slot = target(t.key, check: t.check, now: now)
                seriesTargets[series][j].slot = slot
            }
            evaluate(slot: slot, check: t.check, raw: library.checks[t.check].severity(of: value), value: value, now: now, fresh: true)
        }
    }

    /// The host slot and the check targets a sample of this identity updates.
    func plan(for sample: MetricSample) -> SeriesPlan {
        var targets: [PlanTarget] = []
        for i in byMetric[sample.name] ?? [] {
            let check = library.checks[i]
            guard case .metric(_, let match, let componentTag) = check.source else { continue }
            var matches = true
            for (k, v) in match where sample.tag(k) != v { matches = false; break }
            guard matches else { continue }
            switch check.scope {
            case .node: targets.append(PlanTarget(check: i, key: AlertKey(check: check.id, cluster: sample.cluster, entity: sample.hostname)))
            case .component:
                var component = sample.tag(componentTag) ?? ""
                if let sub = sample.tag("stype-id") { component += "/\(sub)" }
                targets.append(PlanTarget(check: i, key: AlertKey(check: check.id, cluster: sample.cluster, entity: sample.hostname, component: component)))
            case .rack:
                guard let rack = sample.tag("rack") ?? topology.placement(of: sample.hostname)?.rack else { continue }
                targets.append(PlanTarget(check: i, key: AlertKey(check: check.id, cluster: sample.cluster, entity: rack)))
            }
        }
        return SeriesPlan(slot: slot(of: sample.hostname, cluster: sample.cluster), cluster: sample.cluster, targets: targets)
    }

    func apply(_ plan: SeriesPlan, _ value: Double, now: Int64) {
        seenCluster[plan.slot] = plan.cluster
        seenAt[plan.slot] = now
        // A counter check needs the series' previous sample: only registered series keep it.
        for t in plan.targets where !library.checks[t.check].rate {
            evaluate(t.key, check: t.check, raw: library.checks[t.check].severity(of: value), value: value, now: now, fresh: true)
        }
    }

    /// Evaluates a node's scheduler state received at `now`.
    public func observe(_ status: NodeStatus, now: Int64) {
        let slot = slot(of: status.hostname, cluster: status.cluster)
        seenCluster[slot] = status.cluster
        seenAt[slot] = now
        for i in slurmChecks {
            guard case .slurmState(let map) = library.checks[i].source else { continue }
            var worst = status.flags.isEmpty ? Severity.unknown : .ok
            for flag in status.flags { worst = max(worst, flag == "not_responding" ? .crit : map[flag] ?? .unknown) }
            evaluate(AlertKey(check: library.checks[i].id, cluster: status.cluster, entity: status.hostname), check: i, raw: worst,
                     value: nil, now: now, fresh: true)
        }
    }

    /// Counts a job's exit for black-hole detection.
    public func jobEnded(_ exit: JobExit, now: Int64) {
        for i in exitChecks {
            guard case .jobExits(let states, let maxRuntime, _, _, _, _) = library.checks[i].source,
                  states.contains(exit.state), exit.runtime < maxRuntime else { continue }
            for host in exit.hosts {
                failures[i, default: [:]][host, default: []].append((exit.stopTime, exit.user, exit.cluster))
                evaluateExits(check: i, host: host, now: now, fresh: true)
            }
        }
    }

    /// Advances time: pending alerts fire after `for`, held ones resolve after
    /// `keep_firing_for`, silent targets become UNKNOWN, old job failures age out.
    public func tick(now: Int64) {
        for i in silenceChecks {
            guard case .silence(let allowance, let severity) = library.checks[i].source else { continue }
            // Only hosts that have reported at least once (now, or before a restart: see
            // expect(host:cluster:)) are expected to keep reporting; a topology host that never
            // sent anything is not "silent" (a quick start with no collectors pages nobody).
            for slot in seenHost.indices {
                guard let at = seenAt[slot] else { continue }
                let key = AlertKey(check: library.checks[i].id, cluster: seenCluster[slot], entity: seenHost[slot])
                let silent = now - at > allowance
                if silent || states[key] != nil {
                    evaluate(key, check: i, raw: silent ? severity : .ok, value: nil, now: now, fresh: false)
                }
            }
        }
        for (i, hosts) in failures {
            for host in hosts.keys { evaluateExits(check: i, host: host, now: now, fresh: false) }
        }
        for slot in 0..<states.count {
            let st = states.values[slot]
            let check = library.checks[st.checkIndex]
            if let freshness = check.freshnessSeconds, now - st.lastInput > freshness, st.raw != .unknown {
                evaluate(slot: slot, check: st.checkIndex, raw: .unknown, value: nil, now: now, fresh: false)
                continue
            }
            advance(&states.values[slot], check: check, now: now)
            reconcile(states.keys[slot], &states.values[slot], check: check, now: now)
        }
    }

    /// Transitions produced since the last call, in order.
    public func takeTransitions() -> [HealthTransition] {
        defer { transitions.removeAll(keepingCapacity: true) }
        return transitions
    }

    func evaluateExits(check i: Int, host: String, now: Int64, fresh: Bool) {
        guard case .jobExits(_, _, let window, let minFailures, let minUsers, let severity) = library.checks[i].source else { return }
        var list = failures[i]?[host] ?? []
        list.removeAll { $0.time < now - window }
        let users = Set(list.map(\.user)).count
        // The cluster of the newest failure, or of the target already evaluated for this host.
        let id = library.checks[i].id
        let cluster = list.last?.cluster ?? byEntity[host]?.first { $0.check == id }?.cluster ?? ""
        let key = AlertKey(check: id, cluster: cluster, entity: host)
        failures[i]?[host] = list.isEmpty ? nil : list
        let problem = list.count >= minFailures && users >= minUsers
        if problem || states[key] != nil {
            evaluate(key, check: i, raw: problem ? severity : .ok, value: Double(list.count), now: now, fresh: fresh)
        }
    }

    func evaluate(_ key: AlertKey, check i: Int, raw: Severity, value: Double?, now: Int64, fresh: Bool) {
        evaluate(slot: target(key, check: i, now: now), check: i, raw: raw, value: value, now: now, fresh: fresh)
    }

    /// The slot of `key`'s target, created (for check `i`) when new.
    func target(_ key: AlertKey, check i: Int, now: Int64) -> Int {
        let (slot, created) = states.slot(for: key) { TargetState(checkIndex: i, lastInput: now) }
        if created { byEntity[key.entity, default: []].insert(key) }
        return slot
    }

    /// Evaluates the target in `slot`, in place (its history is not copied).
    func evaluate(slot: Int, check i: Int, raw: Severity, value: Double?, now: Int64, fresh: Bool) {
        // Through a buffer pointer: the check is borrowed in place, not copied (a Check is a
        // large struct; copying it per sample was most of the metric path's evaluation).
        library.checks.withUnsafeBufferPointer { checks in
            update(&states.values[slot], key: states.keys[slot], check: checks[i], raw: raw, value: value, now: now, fresh: fresh)
        }
    }

    private func update(_ st: inout TargetState, key: AlertKey, check: Check, raw: Severity, value: Double?, now: Int64, fresh: Bool) {
        if fresh { st.lastInput = now }
        st.raw = raw
        st.value = value
        if fresh, let flap = check.flapping {
            st.history.append(raw)
            if st.history.count > flap.window { st.history.removeFirst(st.history.count - flap.window) }
            let pct = Self.percentStateChange(st.history, window: flap.window)
            if !st.flapping && pct > flap.high { st.flapping = true } else if st.flapping && pct < flap.low { st.flapping = false }
        }
        let before = st.firing
        advance(&st, check: check, now: now)
        // While flapping, a change is recorded in the state but not notified.
        if st.flapping && st.publishedFlapping && before != st.firing { suppressedByFlapping += 1 }
        reconcile(key, &st, check: check, now: now)
    }

    /// Icinga's percent state change: transitions in the window, newer ones weighted more
    /// (0.8 for the oldest to 1.2 for the newest), over the window's possible transitions.
    static func percentStateChange(_ history: [Severity], window: Int) -> Double {
        guard history.count > 1, window > 1 else { return 0 }
        var total = 0.0
        let offset = window - history.count
        for i in 1..<history.count where history[i] != history[i - 1] {
            let position = Double(i - 1 + offset) / Double(max(1, window - 2))
            total += 0.8 + 0.4 * position
        }
        return total / Double(window - 1) * 100
    }

    func advance(_ st: inout TargetState, check: Check, now: Int64) {
        if st.raw.isProblem {
            st.lastProblemAt = now
            if st.firing != nil {
                st.firing = st.raw
            } else {
                let since = st.pendingSince ?? now
                st.pendingSince = since
                if now - since >= check.forSeconds {
                    st.firing = st.raw
                    st.firingSince = since
                }
            }
        } else {
            st.pendingSince = nil
            if st.firing != nil, now - st.lastProblemAt >= check.keepFiringForSeconds { st.firing = nil }
        }
    }

    /// Publishes what consumers should now believe, if it differs from what they were told.
    func reconcile(_ key: AlertKey, _ st: inout TargetState, check: Check, now: Int64) {
        let desired: Severity? = st.flapping ? max(st.history.max() ?? .unknown, .unknown) : st.firing
        guard desired != st.published || st.flapping != st.publishedFlapping else { return }
        if let severity = desired {
            if st.published == nil { st.publishedSince = st.flapping ? now : st.firingSince }
            emit(key, st, check: check, status: .firing, severity: severity, now: now)
        } else if let last = st.published {
            emit(key, st, check: check, status: .resolved, severity: last, now: now)
        }
        st.published = desired
        st.publishedFlapping = st.flapping
    }

    func emit(_ key: AlertKey, _ st: TargetState, check: Check, status: HealthTransition.Status, severity: Severity, now: Int64) {
        let placement = check.scope == .rack ? topology.rackPlacement[key.entity] : topology.placement(of: key.entity)
        var summary = check.summary
        for (token, value) in [("{host}", key.entity), ("{component}", key.component), ("{severity}", severity.rawValue),
                               ("{value}", st.value.map { Self.format($0) } ?? "no data"), ("{check}", check.name)] {
            summary = summary.replacingOccurrences(of: token, with: value)
        }
        if status == .resolved {
            // The firing text ("... at 70 °C (CRIT)") would be false now: say what ended and what holds.
            let what = key.component.isEmpty ? key.entity : "\(key.entity) \(key.component)"
            summary = "\(check.name) on \(what) resolved (was \(severity.rawValue)" + (st.value.map { ", now \(Self.format($0))" } ?? "") + ")"
        }
        transitions.append(HealthTransition(key: key, scope: check.scope, status: status, severity: severity, placement: placement,
                                            startsAt: st.publishedSince, endsAt: status == .resolved ? now : nil,
                                            flapping: st.flapping, value: st.value, name: check.name, summary: summary, at: now))
    }

    static func format(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
    }

    /// The current evaluation of one target.
    public struct TargetView: Sendable, Equatable {
        public var key: AlertKey
        public var scope: Check.Scope
        /// The latest evaluated severity, and the firing one (nil when not firing).
        public var raw: Severity
        public var firing: Severity?
        /// Since when it fires, or is pending.
        public var since: Int64?
        public var flapping: Bool
        public var value: Double?
        /// When its latest input arrived.
        public var lastInput: Int64
    }

    /// Current evaluation of every target (of `entity` only, when given), sorted by key.
    public func targets(entity: String? = nil) -> [TargetView] {
        let keys = entity.map { Array(byEntity[$0] ?? []) } ?? Array(states.keys)
        return keys.compactMap { key -> TargetView? in
            guard let st = states[key] else { return nil }
            return TargetView(key: key, scope: library.checks[st.checkIndex].scope, raw: st.raw, firing: st.firing,
                              since: st.firing != nil ? st.firingSince : st.pendingSince, flapping: st.flapping, value: st.value,
                              lastInput: st.lastInput)
        }.sorted { $0.key < $1.key }
    }
}
