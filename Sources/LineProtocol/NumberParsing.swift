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

/// Exact powers of ten representable in binary64 (10^0 ... 10^22), for the fast path.
private let exactPowersOfTen: [Double] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
]

@inline(__always)
private func isDigit(_ b: UInt8) -> Bool { b &- 0x30 < 10 }

/// Parses a line-protocol float: `[-]` then `d+[.d*][(e|E)[+-]d+]` or `.d+[(e|E)[+-]d+]`.
///
/// The grammar is checked here, so `NaN`, `Inf`, hex floats, `_` separators and `+1` are
/// invalid even though the C library would accept some of them. Digits that fit a 64-bit
/// mantissa with a small exponent take Clinger's exact fast path (one correctly rounded
/// multiplication or division); everything else goes to `strtod`, which glibc rounds
/// correctly. Overflow to infinity is out of range; underflow gives zero, as in lp-v2.
func parseFloat(_ start: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> NumberParse<Double> {
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
        value = exponent >= 0 ? value * exactPowersOfTen[exponent] : value / exactPowersOfTen[-exponent]
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

/// Parses the digits of an `i` value (suffix already removed): `[-]d+`, full int64 range.
func parseInt(_ start: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> NumberParse<Int64> {
    var p = start
    var negative = false
    if p < end && p[0] == UInt8(ascii: "-") {
        negative = true
        p += 1
    }
    if p == end { return .invalid }
    var magnitude: UInt64 = 0
    var overflow = false
    while p < end {
        guard isDigit(p[0]) else { return .invalid }
        let (m, o1) = magnitude.multipliedReportingOverflow(by: 10)
        let (s, o2) = m.addingReportingOverflow(UInt64(p[0] &- 0x30))
        if o1 || o2 { overflow = true }
        magnitude = s
        p += 1
    }
    if overflow { return .outOfRange }
    if negative {
        if magnitude > UInt64(Int64.max) + 1 { return .outOfRange }
        return .value(magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude))
    }
    if magnitude > UInt64(Int64.max) { return .outOfRange }
    return .value(Int64(magnitude))
}

/// Parses the digits of a `u` value (suffix already removed): `d+`, full uint64 range.
func parseUInt(_ start: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> NumberParse<UInt64> {
    if start == end { return .invalid }
    var p = start
    var value: UInt64 = 0
    var overflow = false
    while p < end {
        guard isDigit(p[0]) else { return .invalid }
        let (m, o1) = value.multipliedReportingOverflow(by: 10)
        let (s, o2) = m.addingReportingOverflow(UInt64(p[0] &- 0x30))
        if o1 || o2 { overflow = true }
        value = s
        p += 1
    }
    return overflow ? .outOfRange : .value(value)
}

/// Parses one of the ten boolean spellings.
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
