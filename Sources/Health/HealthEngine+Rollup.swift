/// The roll-up: node → rack → aisle/room → site, worst wins.
extension HealthEngine {
    /// What a target contributes to health: its firing severity, INFO when informational.
    func effective(_ st: TargetState) -> Severity { st.firing ?? (st.raw == .info ? .info : .ok) }

    /// A host's health: worst of its node checks and its component roll-ups (at least
    /// `component_crit_threshold` CRIT components make CRIT, fewer make WARN).
    public func severity(ofHost host: String) -> Severity {
        var worst = Severity.ok
        var components: [Int: [Severity]] = [:]
        for key in byEntity[host] ?? [] {
            guard let st = states[key] else { continue }
            let check = library.checks[st.checkIndex]
            switch check.scope {
            case .node: worst = max(worst, effective(st))
            case .component: components[st.checkIndex, default: []].append(effective(st))
            case .rack: continue
            }
        }
        for (i, severities) in components {
            let crit = severities.filter { $0 == .crit }.count
            let top = severities.max() ?? .ok
            worst = max(worst, crit >= library.checks[i].componentCritThreshold ? .crit : top == .crit ? .warn : top)
        }
        return worst
    }

    /// A rack's health: worst of its rack checks and its hosts.
    public func severity(ofRack rack: String) -> Severity {
        var worst = Severity.ok
        for key in byEntity[rack] ?? [] {
            if let st = states[key], library.checks[st.checkIndex].scope == .rack { worst = max(worst, effective(st)) }
        }
        for host in topology.racks[rack] ?? [] { worst = max(worst, severity(ofHost: host)) }
        return worst
    }

    /// A room's health: worst of its racks.
    public func severity(ofRoom room: String) -> Severity {
        (topology.rooms[room] ?? []).map { severity(ofRack: $0) }.max() ?? .ok
    }

    /// An aisle's health: worst of its racks.
    public func severity(ofAisle aisle: String) -> Severity {
        (topology.aisles[aisle] ?? []).map { severity(ofRack: $0) }.max() ?? .ok
    }

    /// A device's health: worst of its hosts.
    public func severity(ofDevice device: String) -> Severity {
        (topology.devices[device] ?? []).map { severity(ofHost: $0) }.max() ?? .ok
    }

    /// A site's health: worst of its rooms.
    public func severity(ofSite site: String) -> Severity {
        (topology.sites[site] ?? []).map { severity(ofRoom: $0) }.max() ?? .ok
    }
}
