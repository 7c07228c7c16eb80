/// The engine's targets: each alert key's state, kept in an array in order of creation, so
/// the metric path updates a target in place by its slot — no hashing of the key, no copy of
/// its history. Targets are never removed one by one (a reload builds a new table), so a
/// slot stays valid until then.
struct TargetTable {
    private(set) var keys: [AlertKey] = []
    var values: [HealthEngine.TargetState] = []
    private var slots: [AlertKey: Int] = [:]

    var count: Int { keys.count }

    /// The state of `key`; setting stores it (setting nil is not supported: see above).
    subscript(key: AlertKey) -> HealthEngine.TargetState? {
        get { slots[key].map { values[$0] } }
        set {
            guard let newValue else { preconditionFailure("targets are not removed one by one") }
            if let i = slots[key] { values[i] = newValue } else { append(key, newValue) }
        }
    }

    /// The slot of `key`, created with `make()` when new.
    mutating func slot(for key: AlertKey, make: () -> HealthEngine.TargetState) -> (slot: Int, created: Bool) {
        if let i = slots[key] { return (i, false) }
        append(key, make())
        return (keys.count - 1, true)
    }

    private mutating func append(_ key: AlertKey, _ state: HealthEngine.TargetState) {
        slots[key] = keys.count
        keys.append(key)
        values.append(state)
    }
}
