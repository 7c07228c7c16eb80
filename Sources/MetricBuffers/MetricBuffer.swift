/// A fixed ring of 32-bit floats, one slot per `resolution` seconds, holding the last
/// `capacity` slots of one series. A missing sample is NaN. 4 bytes per sample; the ring is
/// allocated once (a plain allocation, not an array: no copy-on-write check per write on the
/// metric path), so memory is bounded by series × capacity × 4 bytes. The store keeps the
/// rings side by side in one array by series number (the metric path's writes go through
/// them in stream order) and frees them (``deallocate()``); used under its lock.
struct MetricBuffer {
    let capacity: Int
    let values: UnsafeMutableBufferPointer<Float>
    /// Slot number (time / resolution) of the newest slot, Int64.min while empty.
    private(set) var newest: Int64 = .min
    /// Where `newest` is in `values`: a collector's samples mostly land in the newest slot
    /// again, written without a division.
    private var newestIndex = 0

    init(capacity: Int) {
        self.capacity = capacity
        values = .allocate(capacity: capacity)
        values.initialize(repeating: .nan)
    }

    /// Frees the ring (the store's deinit).
    func deallocate() { values.deallocate() }

    /// Takes a checkpoint's ring as it was written.
    mutating func restore(newest: Int64, from bytes: UnsafeRawBufferPointer) {
        UnsafeMutableRawBufferPointer(values).copyMemory(from: bytes)
        self.newest = newest
        if newest != .min { newestIndex = index(of: newest) }
    }

    private func index(of slot: Int64) -> Int {
        let n = Int64(capacity)
        return Int(((slot % n) + n) % n)
    }

    /// Stores `value` in `slot`; returns false when the slot is older than the ring holds.
    @discardableResult
    mutating func write(slot: Int64, _ value: Float) -> Bool {
        if slot == newest {
            values[newestIndex] = value
            return true
        }
        let n = Int64(capacity)
        if newest == .min {
            newest = slot
            newestIndex = index(of: slot)
        } else if slot > newest {
            // Slots skipped since the newest one hold no sample.
            var s = newest + 1
            let end = min(slot, newest + n)
            while s < end {
                values[index(of: s)] = .nan
                s += 1
            }
            newest = slot
            newestIndex = index(of: slot)
        } else if slot <= newest - n {
            return false
        }
        values[index(of: slot)] = value
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
            for s in lo...hi { out[Int(s - from)] = values[index(of: s)] }
        }
        return out
    }
}
