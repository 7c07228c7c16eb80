#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Position and line bookkeeping while decoding one buffer.
@usableFromInline
struct Scanner {
    /// Next byte to read.
    @usableFromInline var p: UnsafePointer<UInt8>
    /// One past the last byte.
    @usableFromInline let end: UnsafePointer<UInt8>
    /// 1-based number of the line `lineStart` begins.
    @usableFromInline var line: Int
    /// First byte of the current physical line, for columns.
    @usableFromInline var lineStart: UnsafePointer<UInt8>
    @usableFromInline let table: UnsafePointer<UInt8>
    @usableFromInline let powersOfTen: UnsafePointer<Double>

    @inlinable
    init(start: UnsafePointer<UInt8>, end: UnsafePointer<UInt8>) {
        p = start
        self.end = end
        line = 1
        lineStart = start
        table = ByteClass.table
        powersOfTen = PowersOfTen.table
    }

    /// Call with `p` just past a LF.
    @inlinable
    mutating func newLine() {
        line += 1
        lineStart = p
    }

    /// An error at `at` on the current line.
    func error(at: UnsafePointer<UInt8>, _ reason: DecodeError.Reason) -> DecodeError {
        DecodeError(line: line, column: at - lineStart + 1, reason: reason)
    }

    /// Recovery after an error: skips to just past the next LF and returns the text of the
    /// entry from `entryStart` up to that line ending.
    mutating func skipRestOfLine(from entryStart: UnsafePointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        if p < entryStart { p = entryStart }
        if p >= end { return UnsafeBufferPointer(start: entryStart, count: end - entryStart) }
        if let nl = memchr(p, Int32(Byte.lf), end - p) {
            let lf = UnsafePointer(nl.assumingMemoryBound(to: UInt8.self))
            var contentEnd = lf
            if contentEnd > entryStart && contentEnd[-1] == Byte.cr { contentEnd -= 1 }
            p = lf + 1
            newLine()
            return UnsafeBufferPointer(start: entryStart, count: contentEnd - entryStart)
        }
        p = end
        return UnsafeBufferPointer(start: entryStart, count: end - entryStart)
    }

    /// Skips a comment line starting at `p` (on `#`) including its line ending. Returns an
    /// error for a control character in it (lp-v2 rejects even a tab there).
    mutating func skipComment() -> DecodeError? {
        var q = p
        while q < end && table[Int(q[0])] & ByteClass.commentChar != 0 { q += 1 }
        if q == end { p = end; return nil }
        if q[0] == Byte.lf {
            p = q + 1
            newLine()
            return nil
        }
        if q[0] == Byte.cr {
            if q + 1 == end { p = end; return nil }
            if q[1] == Byte.lf { p = q + 2; newLine(); return nil }
        }
        p = q
        return error(at: q, .controlCharacterInComment(q[0]))
    }

    /// Scans a measurement, key or tag value from `q` up to its first unescaped delimiter
    /// (a byte of class `stop`). Returns whether an escape sequence occurred.
    ///
    /// The common case (plain ASCII) is a tight table loop inlined into the caller; a
    /// backslash or a non-ASCII byte continues out of line.
    @inline(__always)
    func scanName(
        _ q: inout UnsafePointer<UInt8>, stop: UInt8, escapes: EscapeSet, element: DecodeError.Reason.Element
    ) throws(DecodeError) -> Bool {
        var r = q
        while r < end && table[Int(r[0])] & stop == 0 { r += 1 }
        if r == end || (r[0] != Byte.backslash && r[0] < 0x80) {
            q = r
            return false
        }
        q = r
        return try scanNameSlow(&q, stop: stop, escapes: escapes, element: element)
    }

    /// The rest of ``scanName(_:stop:escapes:element:)`` after an escape or a non-ASCII byte.
    @inline(never)
    func scanNameSlow(
        _ q: inout UnsafePointer<UInt8>, stop: UInt8, escapes: EscapeSet, element: DecodeError.Reason.Element
    ) throws(DecodeError) -> Bool {
        var escaped = false
        while true {
            while q < end && table[Int(q[0])] & stop == 0 { q += 1 }
            if q == end { return escaped }
            let b = q[0]
            if b == Byte.backslash {
                if q + 1 < end && escapes.replacement(for: q[1]) != nil {
                    escaped = true
                    q += 2
                } else {
                    q += 1  // a backslash before any other byte is kept literally
                }
                continue
            }
            if b >= 0x80 {
                let n = utf8SequenceLength(q, end)
                if n == 0 { throw error(at: q, .invalidUTF8(in: element)) }
                q += n
                continue
            }
            return escaped
        }
    }

    /// Scans a string value from its opening quote at `q` to just past its closing quote.
    /// Raw newlines are allowed inside and counted. Invalid UTF-8 is reported after the
    /// whole string is consumed, so recovery resumes after the string, as lp-v2 does.
    @inline(__always)
    mutating func scanString(_ q: inout UnsafePointer<UInt8>, key: TokenView) throws(DecodeError) -> TokenView {
        let open = q
        let openLine = line
        let openLineStart = lineStart
        q += 1
        let start = q
        var escaped = false
        var badUTF8: DecodeError?
        while true {
            while q < end && table[Int(q[0])] & ByteClass.stringStop == 0 { q += 1 }
            if q == end {
                p = end
                throw DecodeError(line: openLine, column: open - openLineStart + 1, reason: .unterminatedString(key: key.string))
            }
            let b = q[0]
            if b == Byte.quote { break }
            if b == Byte.backslash {
                if q + 1 < end && EscapeSet.string.replacement(for: q[1]) != nil {
                    escaped = true
                    q += 2
                } else {
                    q += 1
                }
            } else if b == Byte.lf {
                q += 1
                line += 1
                lineStart = q
            } else {
                let n = utf8SequenceLength(q, end)
                if n == 0 {
                    if badUTF8 == nil { badUTF8 = error(at: q, .invalidUTF8(in: .stringValue)) }
                    q += 1
                } else {
                    q += n
                }
            }
        }
        let token = TokenView(start: start, count: q - start, escapes: escaped ? .string : .none)
        q += 1
        // Recovery after a later error on this line must resume past the string, whose
        // raw newlines are already counted.
        p = q
        if let badUTF8 { throw badUTF8 }
        return token
    }

    /// End of a number, boolean or timestamp token starting at `q`.
    @inlinable
    func scanValueToken(from q: UnsafePointer<UInt8>) -> UnsafePointer<UInt8> {
        var e = q
        while e < end && table[Int(e[0])] & ByteClass.valueStop == 0 { e += 1 }
        return e
    }
}
