extension Duration {
    /// Whole milliseconds: libnats takes timeouts and waits in ms.
    var milliseconds: Int64 { nanoseconds / 1_000_000 }

    /// Whole nanoseconds: JetStream configuration fields (AckWait, Duplicates, MaxAge) are ns.
    var nanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}
