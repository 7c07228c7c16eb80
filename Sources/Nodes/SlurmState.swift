/// Every Slurm state word and flag of a node, normalised: lower case, snake case, sinfo's
/// short forms and suffix symbols spelled out (`ALLOC` → `allocated`, `idle*` → `idle` +
/// `not_responding`, `IDLE+DRAIN` → `idle` + `drain`). Sorted, without duplicates.
public struct SlurmState: Sendable, Equatable, CustomStringConvertible {
    /// The normalised words.
    public let flags: [String]

    /// Normalises the `states` of a node-state entry.
    public init(_ states: [String]) {
        var out = Set<String>()
        for state in states {
            for part in state.lowercased().split(whereSeparator: { $0 == "+" || $0 == "," || $0 == " " }) {
                var word = Substring(part)
                while let last = word.last, let flag = Self.suffixes[last] {
                    out.insert(flag)
                    word = word.dropLast()
                }
                guard !word.isEmpty else { continue }
                let name = word.replacingOccurrences(of: "-", with: "_")
                out.insert(Self.aliases[name] ?? name)
            }
        }
        flags = out.sorted()
    }

    /// Whether `flag` (normalised) is present.
    public func contains(_ flag: String) -> Bool { flags.contains(flag) }

    public var description: String { flags.joined(separator: "+") }

    /// sinfo's state suffixes.
    static let suffixes: [Character: String] = [
        "*": "not_responding", "~": "powered_down", "#": "powering_up", "!": "power_down", "%": "powering_down",
        "$": "maint", "@": "reboot_requested", "^": "reboot_issued", "-": "planned",
    ]

    /// sinfo's short forms and the spellings of scontrol/JSON output.
    static let aliases: [String: String] = [
        "alloc": "allocated", "comp": "completing", "drng": "draining", "drain": "drain", "drained": "drained",
        "failg": "failing", "futr": "future", "mix": "mixed", "plnd": "planned", "pow_dn": "power_down",
        "pow_up": "power_up", "resv": "reserved", "unk": "unknown", "block": "blocked", "no_respond": "not_responding",
        "noresp": "not_responding", "npc": "perfctrs", "maintenance": "maint", "reboot": "reboot_requested",
        "idl": "idle", "boot": "rebooting", "invalid_reg": "inval",
    ]
}
