import CLineScan

/// Where the next name-ending byte is: a 64-bit mask of the key-stop bytes (``ByteClass/keyStop``)
/// of a window of the buffer, computed 64 bytes at a time and reused by every token — and
/// every line — inside the window, so finding a token's end is a shift and a bit count.
///
/// Used by the fast path only: the caller guarantees a stop byte (the buffer's last LF) at or
/// before the end, so the byte-by-byte tail needs no bounds check.
@usableFromInline
struct StopCursor {
    /// First byte of the window.
    @usableFromInline var base: UnsafePointer<UInt8>
    /// Bit i set when base[i] is a stop byte; bits past the scanned part of the window are 0.
    @usableFromInline var bits: UInt64
    @usableFromInline let end: UnsafePointer<UInt8>
    @usableFromInline let table: UnsafePointer<UInt8>

    @inlinable
    init(start: UnsafePointer<UInt8>, end: UnsafePointer<UInt8>, table: UnsafePointer<UInt8>) {
        base = start
        bits = 0
        self.end = end
        self.table = table
    }

    /// The first stop byte at or after `q`.
    @inlinable @inline(__always)
    mutating func next(_ q: UnsafePointer<UInt8>) -> UnsafePointer<UInt8> {
        let offset = UInt(bitPattern: q - base)
        if offset < 64 {
            let rest = bits >> UInt64(offset)
            if rest != 0 { return q + rest.trailingZeroBitCount }
        }
        return reload(q)
    }

    /// Moves the window to `q` (and on while it holds no stop) and returns the first stop.
    @usableFromInline @inline(never)
    mutating func reload(_ q: UnsafePointer<UInt8>) -> UnsafePointer<UInt8> {
        var r = q
        while end - r >= 64 {
            base = r
            bits = lp_key_stops64(r)
            if bits != 0 { return r + bits.trailingZeroBitCount }
            r += 64
        }
        while end - r >= 16 {
            base = r
            bits = UInt64(lp_key_stops16(r))
            if bits != 0 { return r + bits.trailingZeroBitCount }
            r += 16
        }
        while table[Int(r[0])] & ByteClass.keyStop == 0 { r += 1 }
        base = r
        bits = 1
        return r
    }
}
