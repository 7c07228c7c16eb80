/// A fixed ring of 32-bit floats, one slot per `resolution` seconds, holding the last
/// `capacity` slots of one series. A missing sample is NaN. 4 bytes per sample; the ring is
/// allocated once, so memory is bounded by series × capacity × 4 bytes.
final class MetricBuffer {
    var values: [Float]
    /// Slot number (time / resolution) of the newest slot, Int64.min while empty.
    var newest: Int64 = .min

    init(capacity: Int) {
        values = [Float](repeating: .nan, count: capacity)
    }

    var capacity: Int { values.count }

    /// Stores `value` in `slot`; returns false when the slot is older than the ring holds.
    @discardableResult
    func write(slot: Int64, _ value: Float) -> Bool {
        let n = Int64(capacity)
        if newest == .min {
            newest = slot
        } else if slot > newest {
            // Slots skipped since the newest one hold no sample.
            var s = newest + 1
            let end = min(slot, newest + n)
            while s < end {
                values[Int(s % n)] = .nan
                s += 1
            }
            newest = slot
        } else if slot <= newest - n {
            return false
        }
        values[Int(((slot % n) + n) % n)] = value
        return true
    }

    /// Values of slots `from...to` (NaN where missing or outside the ring).
    func read(from: Int64, to: Int64) -> [Float] {
        guard to >= from else { return [] }
        let n = Int64(capacity)
        var out = [Float](repeating: .nan, count: Int(to - from + 1))
        guard newest != .min else { return out }
        let lo = max(from, newest - n + 1)
        let hi = min(to, newest)
        if lo <= hi {
            for s in lo...hi { out[Int(s - from)] = values[Int(((s % n) + n) % n)] }
        }
        return out
    }
}
