/// How much a counter (`ib_recv`, an energy counter) grew between two samples, as Prometheus'
/// `rate()` counts it: a value below the previous one is a reset — the counter restarted from
/// 0, so the increase is the new value. One rule for the checks and for a job's data.json.
public func counterIncrease(from previous: Double, to value: Double) -> Double {
    value >= previous ? value - previous : value
}
