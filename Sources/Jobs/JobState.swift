/// The 12 job states of cc-backend's `job_state` column (`out_of_memory` with underscores).
public enum JobState: String, Sendable, CaseIterable {
    case bootFail = "boot_fail", cancelled, completed, deadline, failed
    case nodeFail = "node_fail", outOfMemory = "out_of_memory", pending, preempted, running, suspended, timeout
}

/// How a job shares its nodes (cc-backend's `shared` column).
public enum SharedMode: String, Sendable, CaseIterable {
    case none, singleUser = "single_user", multiUser = "multi_user"

    /// The legacy archive-v2 `exclusive` value: 0 shared, 1 exclusive, 2 shared by one user.
    public init?(exclusive: Int64) {
        switch exclusive {
        case 0: self = .multiUser
        case 1: self = .none
        case 2: self = .singleUser
        default: return nil
        }
    }
}
