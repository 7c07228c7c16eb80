import CLineScan

/// For the benchmark only: the floor under any decoder built on the 16-byte stop masks — it
/// visits every byte that ends a name or value (the same SSE2 masks as the fast path, one set
/// bit consumed per byte, no dependency on the previous token) and does nothing else. Returns
/// the number of stop bytes and LFs, so the work cannot be optimised away.
@_spi(Benchmark)
public func tokenBoundaryWalk(_ buffer: UnsafeRawBufferPointer) -> Int {
    guard let start = buffer.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return 0 }
    let end = UnsafePointer(start) + buffer.count
    var base = UnsafePointer(start)
    var stops = 0
    var lines = 0
    while end - base >= 64 {
        var bits = lp_key_stops64(base)
        while bits != 0 {
            let stop = base + bits.trailingZeroBitCount
            bits &= bits &- 1
            stops += 1
            if stop[0] == Byte.lf { lines += 1 }
        }
        base += 64
    }
    return stops &+ lines
}
