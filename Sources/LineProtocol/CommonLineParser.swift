import CLineScan

/// The decoder's fast path: lines in the form nearly every sender writes, decoded in one pass.
///
/// A common line has ASCII names without escapes, numbers with at most 19 digits and no
/// exponent (or booleans, or strings without raw newlines or non-ASCII bytes), an optional
/// timestamp and an LF or CRLF ending. Anything else — an escape, UTF-8, an error of any
/// kind — makes this path give up (`nil`) and the full parser decode the line from its start,
/// so errors and rare forms keep exactly one implementation.
///
/// Bounds: ``LineDecoder/forEachLine(in:_:)`` calls it only for lines that start before the
/// buffer's last LF. Every scan of a name, number or timestamp stops at an LF at the latest,
/// and string scans give up at an LF, so no per-byte end check is needed; 16-byte loads happen
/// only where 16 bytes remain.
extension LineDecoder {
    @usableFromInline @_transparent
    func parseCommonLine(_ s: inout Scanner, _ stops: inout StopCursor, _ memo: inout TimestampMemo) -> PointView? {
        let end = s.end
        let table = s.table
        let entryStart = s.p
        var q = entryStart

        // Measurement (an `=` in it, which is allowed, leaves it to the full parser).
        q = stops.next(q)
        var b = q[0]
        guard q != entryStart, b == Byte.comma || b == Byte.space else { return nil }
        let measurement = TokenView(start: entryStart, count: q - entryStart, escapes: .none)

        // Tags.
        var tagCount = 0
        // One bit per (first byte, length) of the keys so far: a new key is compared with the
        // earlier ones only when its bit is already set.
        var keySignature: UInt64 = 0
        while b == Byte.comma {
            let kStart = q + 1
            q = stops.next(kStart)
            guard q != kStart, q[0] == Byte.equals else { return nil }
            let kCount = q - kStart
            let vStart = q + 1
            q = stops.next(vStart)
            b = q[0]
            guard q != vStart, b == Byte.comma || b == Byte.space else { return nil }
            let keyBit: UInt64 = 1 << ((UInt64(kStart[0]) &+ UInt64(truncatingIfNeeded: kCount) &* 7) & 63)
            if keySignature & keyBit != 0 {
                for j in 0..<tagCount where sameBytes(commonTags[j].key, kStart, kCount) { return nil }
            }
            keySignature |= keyBit
            if tagCount == Self.commonCapacity { return nil }
            (commonTags + tagCount).initialize(to: TagView(
                key: TokenView(start: kStart, count: kCount, escapes: .none),
                value: TokenView(start: vStart, count: q - vStart, escapes: .none)))
            tagCount += 1
        }
        repeat { q += 1 } while q[0] == Byte.space

        // Fields.
        var fieldCount = 0
        while true {
            let kStart = q
            q = stops.next(kStart)
            guard q != kStart, q[0] == Byte.equals else { return nil }
            let key = TokenView(start: kStart, count: q - kStart, escapes: .none)
            q += 1
            let value: FieldValueView
            switch q[0] {
            case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "0")...UInt8(ascii: "9"):
                let number = commonNumber(&q, s.powersOfTen)
                switch number.kind {
                case .float: value = .float(Double(bitPattern: number.bits))
                case .int: value = .int(Int64(bitPattern: number.bits))
                case .uint: value = .uint(number.bits)
                case .none: return nil
                }
            case Byte.quote:
                let vStart = q + 1
                var r = vStart
                var escaped = false
                while true {
                    r = scan(r, end, table, ByteClass.stringStop, lp_string_stops16)
                    let c = r[0]
                    if c == Byte.quote { break }
                    // LF or non-ASCII: the full parser counts lines and validates UTF-8.
                    guard c == Byte.backslash else { return nil }
                    // r is before the last LF, so r[1] is readable (LF is no escape, so it is never skipped over).
                    if EscapeSet.string.replacement(for: r[1]) != nil {
                        escaped = true
                        r += 2
                    } else {
                        r += 1
                    }
                }
                value = .string(TokenView(start: vStart, count: r - vStart, escapes: escaped ? .string : .none))
                q = r + 1
            case UInt8(ascii: "t"), UInt8(ascii: "T"), UInt8(ascii: "f"), UInt8(ascii: "F"):
                let vEnd = s.scanValueToken(from: q)
                guard let bool = parseBool(q, vEnd) else { return nil }
                value = .bool(bool)
                q = vEnd
            default:
                return nil
            }
            if fieldCount == Self.commonCapacity { return nil }
            (commonFields + fieldCount).initialize(to: FieldView(key: key, value: value))
            fieldCount += 1
            b = q[0]
            guard b == Byte.comma else { break }
            q += 1
        }

        // Timestamp.
        var timestamp: Int64?
        if b == Byte.space {
            repeat { q += 1 } while q[0] == Byte.space
            b = q[0]
            if b != Byte.lf && b != Byte.cr {
                let tokenStart = q
                let negative = b == UInt8(ascii: "-")
                let digitStart = negative ? q + 1 : q
                q = stops.next(digitStart)
                let textCount = q - tokenStart
                if let ns = memo.lookup(endingAt: q, count: textCount) {
                    timestamp = ns
                } else {
                    let count = q - digitStart
                    guard count > 0, count <= 19,
                          let magnitude = digitsValue(digitStart, count, readableFrom: s.lineStart),
                          magnitude <= (negative ? UInt64(Int64.max) + 1 : UInt64(Int64.max)),
                          let ns = precision.nanoseconds(negative ? Int64(truncatingIfNeeded: 0 &- magnitude) : Int64(magnitude))
                    else { return nil }
                    memo.remember(endingAt: q, count: textCount, nanoseconds: ns)
                    timestamp = ns
                }
                while q[0] == Byte.space { q += 1 }
                b = q[0]
            }
        }

        // Line ending (a CR is before the last LF, so q[1] is readable after it).
        let contentEnd = q
        if b == Byte.lf {
            s.p = q + 1
        } else if b == Byte.cr && q[1] == Byte.lf {
            s.p = q + 2
        } else {
            return nil
        }
        let line = s.line
        s.newLine()
        return PointView(
            measurement: measurement,
            tags: UnsafeBufferPointer(start: commonTags, count: tagCount),
            fields: UnsafeBufferPointer(start: commonFields, count: fieldCount),
            timestamp: timestamp,
            line: line,
            raw: UnsafeBufferPointer(start: entryStart, count: contentEnd - entryStart)
        )
    }
}

/// The first byte at or after `q` of class `stop`: 16 bytes at a time while 16 remain before
/// `end`, then byte by byte (the caller guarantees a stop byte before the end).
@inlinable @inline(__always)
func scan(
    _ q: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>, _ table: UnsafePointer<UInt8>, _ stop: UInt8,
    _ stops16: (UnsafePointer<UInt8>) -> UInt32
) -> UnsafePointer<UInt8> {
    var r = q
    while end - r >= 16 {
        let mask = stops16(r)
        if mask != 0 { return r + mask.trailingZeroBitCount }
        r += 16
    }
    while table[Int(r[0])] & stop == 0 { r += 1 }
    return r
}

/// Whether an unescaped key equals the `count` bytes at `start`.
@inlinable
func sameBytes(_ key: TokenView, _ start: UnsafePointer<UInt8>, _ count: Int) -> Bool {
    guard key.count == count else { return false }
    for i in 0..<count where key.start[i] != start[i] { return false }
    return true
}

@inlinable
func isASCIIDigit(_ b: UInt8) -> Bool { b &- 0x30 < 10 }

/// Whether `b` ends a number, boolean or timestamp token.
@inlinable
func isValueStop(_ b: UInt8) -> Bool {
    b == Byte.comma || b == Byte.space || b == Byte.lf || b == Byte.cr
}

/// What ``commonNumber(_:_:)`` found; `none` leaves the line to the full parser.
@usableFromInline
enum CommonNumberKind { case none, float, int, uint }

/// A number of the common forms at `q`: `[-]d+[.d*]` or `[-].d+` (float, at most 19 digits,
/// exact by one correctly rounded division), `[-]d+i`, `d+u`. On success `q` is just past it.
/// The value comes back as bits with its kind, two registers rather than an enum in memory.
@usableFromInline @_transparent
func commonNumber(_ q: inout UnsafePointer<UInt8>, _ powersOfTen: UnsafePointer<Double>) -> (kind: CommonNumberKind, bits: UInt64) {
    var p = q
    let negative = p[0] == UInt8(ascii: "-")
    if negative { p += 1 }
    let digitStart = p
    var mantissa: UInt64 = 0
    while isASCIIDigit(p[0]) {
        mantissa = mantissa &* 10 &+ UInt64(p[0] &- 0x30)
        p += 1
    }
    var digits = p - digitStart
    var scale = 0
    var c = p[0]
    if c == UInt8(ascii: ".") {
        p += 1
        let fractionStart = p
        while isASCIIDigit(p[0]) {
            mantissa = mantissa &* 10 &+ UInt64(p[0] &- 0x30)
            p += 1
        }
        scale = p - fractionStart
        digits += scale
        c = p[0]
    } else if c == UInt8(ascii: "i") || c == UInt8(ascii: "u") {
        guard digits > 0, digits <= 19, isValueStop(p[1]) else { return (.none, 0) }
        q = p + 1
        if c == UInt8(ascii: "u") {
            return negative ? (.none, 0) : (.uint, mantissa)
        }
        guard mantissa <= (negative ? UInt64(Int64.max) + 1 : UInt64(Int64.max)) else { return (.none, 0) }
        return (.int, negative ? 0 &- mantissa : mantissa)
    }
    guard digits > 0, digits <= 19, mantissa < (1 << 53), scale <= 22, isValueStop(c) else { return (.none, 0) }
    q = p
    // Integral values (scale 0) skip the division: same result, no divider latency.
    let value = scale == 0 ? Double(mantissa) : Double(mantissa) / powersOfTen[scale]
    return (.float, (negative ? -value : value).bitPattern)
}

/// The value of the `count` (1...19) bytes at `p` when all are ASCII digits: 8 digits at a
/// time, the last 1-7 by one 8-byte load that ends with them (bytes before them, from
/// `readableFrom` on, are read and replaced by zeros).
@inlinable @inline(__always)
func digitsValue(_ p: UnsafePointer<UInt8>, _ count: Int, readableFrom: UnsafePointer<UInt8>) -> UInt64? {
    var q = p
    var remaining = count
    var value: UInt64 = 0
    while remaining >= 8 {
        let chunk = UnsafeRawPointer(q).loadUnaligned(as: UInt64.self).littleEndian
        guard allEightAreDigits(chunk) else { return nil }
        value = value &* 100_000_000 &+ valueOfEightDigits(chunk)
        q += 8
        remaining -= 8
    }
    guard remaining > 0 else { return value }
    guard q + remaining - 8 >= readableFrom else {
        for i in 0..<remaining {
            guard isASCIIDigit(q[i]) else { return nil }
            value = value &* 10 &+ UInt64(q[i] &- 0x30)
        }
        return value
    }
    let leading = UInt64(8 - remaining) * 8
    let leadingMask: UInt64 = (1 << leading) &- 1
    let chunk = (UnsafeRawPointer(q + remaining - 8).loadUnaligned(as: UInt64.self).littleEndian & ~leadingMask)
        | (0x3030_3030_3030_3030 & leadingMask)
    guard allEightAreDigits(chunk) else { return nil }
    return value &* powerOfTen(remaining) &+ valueOfEightDigits(chunk)
}

/// 10^n for 0 <= n < 8.
@inlinable @inline(__always)
func powerOfTen(_ n: Int) -> UInt64 {
    switch n {
    case 0: 1
    case 1: 10
    case 2: 100
    case 3: 1_000
    case 4: 10_000
    case 5: 100_000
    case 6: 1_000_000
    default: 10_000_000
    }
}
