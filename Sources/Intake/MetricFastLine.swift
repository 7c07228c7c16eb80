import CLineScan
/// The metric path's one-pass read of the most common line — `<series bytes> value=<number>
/// [<timestamp>]` with no escape and no quote — for a series already indexed (so its bytes
/// are known to decode). Own scanner, not the line-protocol decoder, for speed: it needs no
/// tag views, only where the series bytes end, the number and the timestamp. Anything else
/// is left to the decoder, which then reads exactly what it always read: a line with an
/// escape or a quote, the rest of the message (a quoted string may span lines); any other
/// line, that line alone.
enum MetricFastLine {
    /// What one scan found.
    enum Scan {
        /// A common line: its series bytes, value and raw timestamp; `next` starts the next line.
        case line(key: UnsafeRawBufferPointer, value: Double, timestamp: Int64?, next: UnsafePointer<UInt8>)
        /// Not a common line: the decoder reads the line up to `end` (after its LF).
        case other(until: UnsafePointer<UInt8>)
        /// A line with an escape or a quote: the decoder reads the rest of the message.
        case rest
    }

    private static let newline = UInt8(ascii: "\n"), space = UInt8(ascii: " ")
    private static let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")
    /// Powers of ten a Double holds exactly (a mantissa ≤ 2^53 divided by one of them is
    /// correctly rounded: Clinger's fast path, as the decoder reads such numbers).
    private static let powersOfTen: [Double] = (0...22).map { pow10($0) }

    private static func pow10(_ n: Int) -> Double {
        var v = 1.0
        for _ in 0..<n { v *= 10 }
        return v
    }

    /// Scans the line starting at `start` (before `end`).
    static func scan(_ start: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> Scan {
        var p = start
        // The series bytes: up to the first space; sixteen bytes a step to the first byte
        // that can end them, then that byte (or the last few) one at a time.
        while end - p >= 16 {
            let stops = lp_series_stops16(p)
            if stops != 0 {
                p += Int(stops.trailingZeroBitCount)
                break
            }
            p += 16
        }
        while p < end {
            let b = p.pointee
            if b == space { break }
            if b == backslash || b == quote { return .rest }
            if b == newline || b == UInt8(ascii: "\r") || b == UInt8(ascii: "#") { return other(from: p, end) }
            p += 1
        }
        guard p < end, p > start else { return other(from: p, end) }
        let key = UnsafeRawBufferPointer(start: start, count: p - start)
        p += 1
        guard end - p >= 7, p[0] == UInt8(ascii: "v"), p[1] == UInt8(ascii: "a"), p[2] == UInt8(ascii: "l"), p[3] == UInt8(ascii: "u"),
              p[4] == UInt8(ascii: "e"), p[5] == UInt8(ascii: "=") else { return other(from: p, end) }
        p += 6
        guard let (value, afterValue) = number(p, end) else { return other(from: p, end) }
        p = afterValue
        var timestamp: Int64?
        if p < end && p.pointee == space {
            p += 1
            var t: Int64 = 0, digits = 0
            while p < end, p.pointee &- 0x30 < 10, digits < 18 {
                t = t * 10 + Int64(p.pointee &- 0x30)
                digits += 1
                p += 1
            }
            guard digits > 0 else { return other(from: p, end) }
            timestamp = t
        }
        if p == end { return .line(key: key, value: value, timestamp: timestamp, next: p) }
        guard p.pointee == newline else { return other(from: p, end) }
        return .line(key: key, value: value, timestamp: timestamp, next: p + 1)
    }

    /// `-?digits[.digits]` (a float), `-?digits i` (an integer) or `digits u`, of at most 18
    /// digits without leading zeros; nil for any other form (exponents, many digits: the
    /// decoder's).
    private static func number(_ start: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> (Double, UnsafePointer<UInt8>)? {
        var p = start
        let negative = p < end && p.pointee == UInt8(ascii: "-")
        if negative { p += 1 }
        let first = p
        var m: UInt64 = 0
        while p < end, p.pointee &- 0x30 < 10, p - first < 18 {
            m = m * 10 + UInt64(p.pointee &- 0x30)
            p += 1
        }
        let integerDigits = p - first
        guard integerDigits > 0, integerDigits == 1 || first.pointee != UInt8(ascii: "0") else { return nil }
        guard p < end else { return nil }
        switch p.pointee {
        case UInt8(ascii: "i"):
            let v = Int64(m)
            return (Double(negative ? -v : v), p + 1)
        case UInt8(ascii: "u"):
            return negative ? nil : (Double(m), p + 1)
        case UInt8(ascii: "."):
            p += 1
            let fractionStart = p
            while p < end, p.pointee &- 0x30 < 10, p - first < 19 {
                m = m * 10 + UInt64(p.pointee &- 0x30)
                p += 1
            }
            let fraction = p - fractionStart
            guard fraction > 0, m <= 1 << 53, p < end, p.pointee &- 0x30 >= 10 else { return nil }
            let v = Double(m) / powersOfTen[fraction]
            return (negative ? -v : v, p)
        default:
            guard m <= 1 << 53 else { return nil }
            let v = Double(m)
            return (negative ? -v : v, p)
        }
    }

    /// The line from `p` on is not common: with an escape or a quote the rest of the message
    /// goes to the decoder, else this line (through its LF).
    private static func other(from p: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> Scan {
        var q = p
        while q < end {
            let b = q.pointee
            if b == backslash || b == quote { return .rest }
            if b == newline { return .other(until: q + 1) }
            q += 1
        }
        return .other(until: end)
    }
}
