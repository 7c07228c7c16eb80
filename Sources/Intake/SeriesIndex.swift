import Foundation

/// Series numbers by the bytes a line names its series with — measurement and tags exactly as
/// sent (`cpu_load,cluster=fritz,hostname=f0101,type=node`). The same bytes always decode to
/// the same series, so a line whose bytes are here skips tag decoding, strings and the
/// store's key lookup. Own open-addressing table over one byte arena (not a `Dictionary`
/// of byte arrays) for speed: no allocation and one hash pass per line.
struct SeriesIndex {
    private struct Slot {
        var hash: UInt64 = 0
        var entry: Int32 = -1
    }

    private struct Entry {
        var start: Int
        var length: Int32
        var series: Series
    }

    /// What the index knows of a series: its number, its host (the decoder's number for the
    /// hostname) and whether a check watches it.
    struct Series {
        var number: Int32
        var host: Int32
        var watched: Bool
    }

    private var slots: [Slot]
    private var entries: [Entry] = []
    private var arena: [UInt8] = []
    private let seed: UInt64
    /// Entries kept at most: the same series sent with its tags in other orders has other
    /// bytes, so the index is emptied (and refilled by the slow path) past this.
    let limit: Int

    init(limit: Int, seed: UInt64 = UInt64.random(in: .min ... .max)) {  // colliding keys cannot be chosen from outside
        self.limit = max(16, limit)
        self.seed = seed
        slots = [Slot](repeating: Slot(), count: 1024)
    }

    /// A placeholder holding nothing (no table allocated).
    init(limit: Int, empty: Void) {
        self.limit = limit
        seed = 0
        slots = []
    }

    var count: Int { entries.count }

    /// The series of `key`, nil when it is not indexed.
    func find(_ key: UnsafeRawBufferPointer, hash: UInt64) -> Series? {
        slots.withUnsafeBufferPointer { slots in
            let mask = slots.count - 1
            var i = Int(truncatingIfNeeded: hash) & mask
            while true {
                let slot = slots[i]
                if slot.entry < 0 { return nil }
                if slot.hash == hash {
                    let e = entries[Int(slot.entry)]
                    if Int(e.length) == key.count
                        && arena.withUnsafeBytes({ memcmp($0.baseAddress! + e.start, key.baseAddress!, key.count) == 0 }) {
                        return e.series
                    }
                }
                i = (i + 1) & mask
            }
        }
    }

    /// Indexes `key` as `series`.
    mutating func insert(_ key: UnsafeRawBufferPointer, hash: UInt64, series: Series) {
        if entries.count >= limit { self = SeriesIndex(limit: limit, seed: seed) }
        if (entries.count + 1) * 2 > slots.count { grow() }
        entries.append(Entry(start: arena.count, length: Int32(key.count), series: series))
        arena.append(contentsOf: key)
        place(Int32(entries.count - 1), hash: hash)
    }

    private mutating func place(_ entry: Int32, hash: UInt64) {
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: hash) & mask
        while slots[i].entry >= 0 { i = (i + 1) & mask }
        slots[i] = Slot(hash: hash, entry: entry)
    }

    private mutating func grow() {
        let old = slots
        slots = [Slot](repeating: Slot(), count: slots.count * 2)
        for slot in old where slot.entry >= 0 { place(slot.entry, hash: slot.hash) }
    }

    /// A 64-bit hash of `key`, eight bytes a step (multiply–xorshift mixing, seeded per process).
    func hash(_ key: UnsafeRawBufferPointer) -> UInt64 {
        var h = seed ^ (UInt64(key.count) &* 0x9E37_79B9_7F4A_7C15)
        var i = 0
        let n = key.count
        while i + 8 <= n {
            h = (h ^ key.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0xFF51_AFD7_ED55_8CCD
            h ^= h >> 32
            i += 8
        }
        if i < n {
            var tail: UInt64 = 0
            for j in i..<n { tail = tail << 8 | UInt64(key[j]) }
            h = (h ^ tail) &* 0xC4CE_B9FE_1A85_EC53
        }
        h ^= h >> 29
        h = h &* 0x9E37_79B9_7F4A_7C15
        return h ^ (h >> 32)
    }
}
