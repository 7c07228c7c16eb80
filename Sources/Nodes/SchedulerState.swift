/// cc-backend's one-word scheduler state of a node (`schema.SchedulerState`).
public enum SchedulerState: String, Sendable, CaseIterable {
    case allocated, reserved, idle, mixed, down, unknown

    /// Reduces Slurm's state list exactly as cc-backend does (`determineState`): compared
    /// lower-cased and whole, first rule wins — allocated, reserved, idle together with down
    /// → down, idle, down, mixed, otherwise unknown. Every other flag is ignored here (the
    /// flags are kept separately in ``SlurmState``).
    public static func reduce(_ states: [String]) -> SchedulerState {
        var seen = Set<String>()
        for s in states { seen.insert(s.lowercased()) }
        if seen.contains("allocated") { return .allocated }
        if seen.contains("reserved") { return .reserved }
        if seen.contains("idle") { return seen.contains("down") ? .down : .idle }
        if seen.contains("down") { return .down }
        if seen.contains("mixed") { return .mixed }
        return .unknown
    }
}
