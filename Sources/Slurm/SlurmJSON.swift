import Model

/// Reading Slurm's REST-style JSON (`squeue --json`, `sinfo --json`) across its versions:
/// 22.05 (openapi v0.0.38) writes plain numbers and strings; 23.02 and later wrap numbers
/// as `{"set": true, "infinite": false, "number": N}` and states as arrays.
extension JSONValue {
    /// An integer, plain or in Slurm's `{"set", "number"}` wrapper (nil when unset or infinite).
    var slurmInteger: Int64? {
        switch self {
        case .integer(let i): return i
        case .double(let d): return Int64(exactly: d.rounded(.towardZero))
        case .object:
            if self["set"] == .bool(false) || self["infinite"] == .bool(true) { return nil }
            return self["number"]?.slurmInteger
        default: return nil
        }
    }

    /// A state as a list of words: `"IDLE"`, `"idle"` or `["IDLE", "DRAIN"]`, upper-cased.
    var slurmWords: [String] {
        switch self {
        case .string(let s): return s.isEmpty ? [] : s.split(separator: "+").map { $0.uppercased() }
        case .array(let items): return items.flatMap(\.slurmWords)
        default: return []
        }
    }

    /// A non-empty string, with Slurm's "(null)" as absent.
    var slurmText: String? {
        guard let s = stringValue, !s.isEmpty, s != "(null)" else { return nil }
        return s
    }
}

/// Output a Slurm command gave that clusterd cannot read.
public struct SlurmOutputError: Error, Sendable, CustomStringConvertible {
    /// What is wrong, naming the command.
    public let description: String

    /// An error about `command`'s output.
    public init(_ command: String, _ reason: String) { description = "\(command): \(reason)" }
}
