/// Per-byte classes for the scanning loops: one table lookup decides whether a byte can
/// stay in the current token, so the common (ASCII, unescaped) case is a tight loop.
@usableFromInline
enum ByteClass {
    /// Ends a measurement name: `,` space, control characters, DEL, `\`, and non-ASCII
    /// (non-ASCII bytes stop the loop only to validate their UTF-8 sequence).
    @inlinable static var measurementStop: UInt8 { 1 << 0 }
    /// Ends a tag key, tag value or field key: as measurement plus `=`.
    @inlinable static var keyStop: UInt8 { 1 << 1 }
    /// Stops a string value scan: `"`, `\`, LF (line counting) and non-ASCII.
    @inlinable static var stringStop: UInt8 { 1 << 2 }
    /// Ends a number, boolean or timestamp token: `,` space, CR, LF.
    @inlinable static var valueStop: UInt8 { 1 << 3 }
    /// Allowed in a comment line: printable ASCII and any byte >= 0x80 (lp-v2 rule).
    @inlinable static var commentChar: UInt8 { 1 << 4 }
    /// ASCII digit.
    @inlinable static var digit: UInt8 { 1 << 5 }

    /// The 256-entry table, allocated once for the process and never freed.
    @usableFromInline nonisolated(unsafe) static let table: UnsafePointer<UInt8> = {
        let t = UnsafeMutablePointer<UInt8>.allocate(capacity: 256)
        for b in 0..<256 {
            var c: UInt8 = 0
            let isControl = b < 0x20 || b == 0x7F
            let nonASCII = b >= 0x80
            if isControl || nonASCII || b == 0x2C || b == 0x20 || b == 0x5C { c |= measurementStop }
            if isControl || nonASCII || b == 0x2C || b == 0x20 || b == 0x5C || b == 0x3D { c |= keyStop }
            if nonASCII || b == 0x22 || b == 0x5C || b == 0x0A { c |= stringStop }
            if b == 0x2C || b == 0x20 || b == 0x0D || b == 0x0A { c |= valueStop }
            if !isControl { c |= commentChar }
            if b >= 0x30 && b <= 0x39 { c |= digit }
            t[b] = c
        }
        return UnsafePointer(t)
    }()
}

/// Length of the valid UTF-8 sequence starting at `p` (whose first byte is >= 0x80),
/// or 0 when the bytes up to `end` do not form one (overlongs, surrogates and code
/// points above U+10FFFF are invalid, as in Go's utf8.Valid).
@inline(__always)
func utf8SequenceLength(_ p: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> Int {
    let b0 = p[0]
    let available = end - p
    @inline(__always) func cont(_ i: Int, _ lo: UInt8 = 0x80, _ hi: UInt8 = 0xBF) -> Bool {
        i < available && p[i] >= lo && p[i] <= hi
    }
    switch b0 {
    case 0xC2...0xDF: return cont(1) ? 2 : 0
    case 0xE0: return cont(1, 0xA0) && cont(2) ? 3 : 0
    case 0xE1...0xEC, 0xEE...0xEF: return cont(1) && cont(2) ? 3 : 0
    case 0xED: return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0
    case 0xF0: return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0
    case 0xF1...0xF3: return cont(1) && cont(2) && cont(3) ? 4 : 0
    case 0xF4: return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0
    default: return 0
    }
}
