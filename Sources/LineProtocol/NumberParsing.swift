#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Outcome of parsing a number token.
@usableFromInline
enum NumberParse<T> {
    case value(T)
    case invalid
    case outOfRange
}

/// Exact powers of ten representable in binary64 (10^0 ... 10^22), for the fast path;
/// allocated once and handed to the parser as a pointer (a global array would cost a lazy
/// initialisation check and a bounds check per value).
@usableFromInline
enum PowersOfTen {
    @usableFromInline nonisolated(unsafe) static let table: UnsafePointer<Double> = {
        let t = UnsafeMutablePointer<Double>.allocate(capacity: 23)
        var v = 1.0
        for i in 0...22 {
            t[i] = v
            v *= 10
        }
        return UnsafePointer(t)
    }()
}

@inline(__always)
private func isDigit(_ b: UInt8) -> Bool { b &- 0x30 < 10 }

/// Parses a line-protocol float: `[-]` then `d+[.d*][(e|E)[+-]d+]` or `.d+[(e|E)[+-]d+]`.
///
/// The grammar is checked here, so `NaN`, `Inf`, hex floats, `_` separators and `+1` are
/// invalid even though the C library would accept some of them. Digits that fit a 64-bit
/// mantissa with a small exponent take Clinger's exact fast path (one correctly rounded
/// multiplication or division); everything else goes to `strtod`, which glibc rounds
/// correctly. Overflow to infinity is out of range; underflow gives zero, as in lp-v2.
@inline(__always)
func parseFloat(_ start: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>, powersOfTen: UnsafePointer<Double>) -> NumberParse<Double> {
    var p = start
    var negative = false
    if p < end && p[0] == UInt8(ascii: "-") {
        negative = true
        p += 1
    }
    var mantissa: UInt64 = 0
    var exponent = 0
    var digits = 0
    var truncated = false
    while p < end && isDigit(p[0]) {
        let d = UInt64(p[0] &- 0x30)
        if mantissa <= (UInt64.max - 9) / 10 { mantissa = mantissa &* 10 &+ d } else { exponent += 1; truncated = true }
        digits += 1
        p += 1
    }
    if p < end && p[0] == UInt8(ascii: ".") {
        p += 1
        while p < end && isDigit(p[0]) {
            let d = UInt64(p[0] &- 0x30)
            if mantissa <= (UInt64.max - 9) / 10 { mantissa = mantissa &* 10 &+ d; exponent -= 1 } else { truncated = true }
            digits += 1
            p += 1
        }
    }
    if digits == 0 { return .invalid }
    if p < end && (p[0] == UInt8(ascii: "e") || p[0] == UInt8(ascii: "E")) {
        p += 1
        var expNegative = false
        if p < end && (p[0] == UInt8(ascii: "+") || p[0] == UInt8(ascii: "-")) {
            expNegative = p[0] == UInt8(ascii: "-")
            p += 1
        }
        var expValue = 0
        var expDigits = 0
        while p < end && isDigit(p[0]) {
            if expValue < 1_000_000 { expValue = expValue * 10 + Int(p[0] &- 0x30) }
            expDigits += 1
            p += 1
        }
        if expDigits == 0 { return .invalid }
        exponent += expNegative ? -expValue : expValue
    }
    if p != end { return .invalid }
    if mantissa == 0 && !truncated { return .value(negative ? -0.0 : 0.0) }
    if !truncated && mantissa < (1 << 53) && exponent >= -22 && exponent <= 22 {
        var value = Double(mantissa)
        value = exponent >= 0 ? value * powersOfTen[exponent] : value / powersOfTen[-exponent]
        return .value(negative ? -value : value)
    }
    return parseFloatSlow(start, end)
}

/// The exact path: `strtod` on a NUL-terminated copy of a token already known to be valid.
private func parseFloatSlow(_ start: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> NumberParse<Double> {
    let count = end - start
    return withUnsafeTemporaryAllocation(of: CChar.self, capacity: count + 1) { buffer in
        let base = buffer.baseAddress!
        UnsafeMutableRawPointer(base).copyMemory(from: start, byteCount: count)
        base[count] = 0
        let value = strtod(base, nil)
        return value.isInfinite ? .outOfRange : .value(value)
    }
}

/// Whether the 8 bytes (little-endian in `v`) are all ASCII digits.
@inlinable
func allEightAreDigits(_ v: UInt64) -> Bool {
    ((v &+ 0x4646_4646_4646_4646) | (v &- 0x3030_3030_3030_3030)) & 0x8080_8080_8080_8080 == 0
}

/// The value of 8 ASCII digits (first digit in the lowest byte), with three multiplications
/// instead of eight dependent multiply-adds.
@inlinable
func valueOfEightDigits(_ v: UInt64) -> UInt64 {
    var v = v &- 0x3030_3030_3030_3030
    v = (v &* 10) &+ (v >> 8)
    return (((v & 0x0000_00FF_0000_00FF) &* 0x000F_4240_0000_0064)
        &+ (((v >> 16) & 0x0000_00FF_0000_00FF) &* 0x0000_2710_0000_0001)) >> 32
}

/// Reads the run of ASCII digits at `p`: returns their value (exact while there are at most
/// 19 digits, which always fit a UInt64), how many there were, and where they end.
@inline(__always)
func scanDigits(_ p: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> (value: UInt64, count: Int, end: UnsafePointer<UInt8>) {
    var q = p
    var value: UInt64 = 0
    while end - q >= 8 {
        let chunk = UnsafeRawPointer(q).loadUnaligned(as: UInt64.self).littleEndian
        guard allEightAreDigits(chunk) else { break }
        value = value &* 100_000_000 &+ valueOfEightDigits(chunk)
        q += 8
    }
    while q < end && isDigit(q[0]) {
        value = value &* 10 &+ UInt64(q[0] &- 0x30)
        q += 1
    }
    return (value, q - p, q)
}

/// Exact value of a run of more than 19 digits, or nil when it exceeds UInt64 (rare path:
/// leading zeros or out-of-range numbers).
private func longDigitsValue(_ p: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> UInt64? {
    var value: UInt64 = 0
    var q = p
    while q < end {
        let (m, o1) = value.multipliedReportingOverflow(by: 10)
        let (s, o2) = m.addingReportingOverflow(UInt64(q[0] &- 0x30))
        if o1 || o2 { return nil }
        value = s
        q += 1
    }
    return value
}

/// The Int64 for a digit run already scanned by ``scanDigits(_:_:)`` starting at `digitStart`,
/// with its sign: exact for any number of digits, out of range beyond int64.
@inline(__always)
func int64Value(negative: Bool, digitStart: UnsafePointer<UInt8>,
                digits: (value: UInt64, count: Int, end: UnsafePointer<UInt8>)) -> NumberParse<Int64> {
    if digits.count == 0 { return .invalid }
    var magnitude = digits.value
    if digits.count > 19 {
        guard let exact = longDigitsValue(digitStart, digits.end) else { return .outOfRange }
        magnitude = exact
    }
    if negative {
        if magnitude > UInt64(Int64.max) + 1 { return .outOfRange }
        return .value(magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude))
    }
    if magnitude > UInt64(Int64.max) { return .outOfRange }
    return .value(Int64(magnitude))
}

/// Parses the digits of an `i` value (suffix already removed): `[-]d+`, full int64 range.
@inline(__always)
func parseInt(_ start: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> NumberParse<Int64> {
    let negative = start < end && start[0] == UInt8(ascii: "-")
    let digitStart = negative ? start + 1 : start
    let digits = scanDigits(digitStart, end)
    if digits.end != end { return .invalid }
    return int64Value(negative: negative, digitStart: digitStart, digits: digits)
}

/// Parses the digits of a `u` value (suffix already removed): `d+`, full uint64 range.
func parseUInt(_ start: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> NumberParse<UInt64> {
    let digits = scanDigits(start, end)
    if digits.count == 0 || digits.end != end { return .invalid }
    if digits.count > 19 {
        guard let exact = longDigitsValue(start, end) else { return .outOfRange }
        return .value(exact)
    }
    return .value(digits.value)
}

/// Parses one of the ten boolean spellings.
@usableFromInline
func parseBool(_ start: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> Bool? {
    let n = end - start
    @inline(__always) func matches(_ s: StaticString) -> Bool {
        s.utf8CodeUnitCount == n && memcmp(start, s.utf8Start, n) == 0
    }
    switch n {
    case 1:
        switch start[0] {
        case UInt8(ascii: "t"), UInt8(ascii: "T"): return true
        case UInt8(ascii: "f"), UInt8(ascii: "F"): return false
        default: return nil
        }
    case 4:
        if matches("true") || matches("True") || matches("TRUE") { return true }
        return nil
    case 5:
        if matches("false") || matches("False") || matches("FALSE") { return false }
        return nil
    default:
        return nil
    }
}
