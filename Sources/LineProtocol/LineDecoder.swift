#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Decodes InfluxDB line protocol with the grammar of lp-v2 (influxdata/line-protocol v2,
/// which ClusterCockpit uses), line by line, without allocating per line.
///
/// Every line is either a point or an error; a bad line never stops the lines after it.
/// Deliberate differences from lp-v2, each a rejection where lp-v2 is looser than its own
/// grammar: hex floats and `_` digit separators (accepted by Go's ParseFloat) are invalid,
/// and a duplicate tag key rejects the line (as InfluxDB itself does).
///
/// A decoder owns reusable storage for tags and fields; it is not thread-safe: use one per
/// thread or task.
public final class LineDecoder {
    /// Timestamp precision of the buffers this decoder reads.
    public let precision: Precision

    // The full parser's storage grows with the widest line seen.
    private var tagStorage: UnsafeMutablePointer<TagView>
    private var tagCapacity: Int
    private var fieldStorage: UnsafeMutablePointer<FieldView>
    private var fieldCapacity: Int
    // The fast path's storage has a fixed size (wider lines go to the full parser): constant
    // pointers, so code inlined into callers reads them without exclusivity checks.
    @usableFromInline let commonTags: UnsafeMutablePointer<TagView>
    @usableFromInline let commonFields: UnsafeMutablePointer<FieldView>
    /// Tags and fields a line may have on the fast path.
    @inlinable static var commonCapacity: Int { 64 }
    /// Whether common lines take the one-pass fast path (see ``init(precision:fastPath:)``).
    @usableFromInline let fastPath: Bool

    /// Creates a decoder for timestamps in `precision`.
    public convenience init(precision: Precision = .nanoseconds) {
        self.init(precision: precision, fastPath: true)
    }

    /// Creates a decoder; with `fastPath` false every line goes through the full parser,
    /// which decodes exactly the same (the tests compare both on random input) but slower.
    public init(precision: Precision, fastPath: Bool) {
        self.precision = precision
        self.fastPath = fastPath
        tagCapacity = 16
        fieldCapacity = 16
        tagStorage = .allocate(capacity: tagCapacity)
        fieldStorage = .allocate(capacity: fieldCapacity)
        commonTags = .allocate(capacity: Self.commonCapacity)
        commonFields = .allocate(capacity: Self.commonCapacity)
    }

    deinit {
        tagStorage.deallocate()
        fieldStorage.deallocate()
        commonTags.deallocate()
        commonFields.deallocate()
    }

    /// Decodes every line of `buffer` and calls `body` once per point or bad line, in order.
    /// Blank and comment lines produce nothing. Views passed to `body` are valid only
    /// during that call.
    ///
    /// Inlinable so that `body` is specialised into the loop: common lines take the fast
    /// path inline, everything else one call to the full parser.
    @inlinable @inline(__always)
    public func forEachLine(in buffer: UnsafeRawBufferPointer, _ body: (LineEntry) throws -> Void) rethrows {
        guard let base = buffer.baseAddress?.assumingMemoryBound(to: UInt8.self), buffer.count > 0 else { return }
        var s = Scanner(start: UnsafePointer(base), end: UnsafePointer(base) + buffer.count)
        // The fast path needs an LF after the line to stop its scans; past the last LF (an
        // unterminated final line) only the full parser runs.
        var limit = s.end - 1
        while limit > s.p && limit[0] != Byte.lf { limit -= 1 }
        if !fastPath || limit[0] != Byte.lf { limit = s.p }
        var stops = StopCursor(start: s.p, end: s.end, table: s.table)
        var memo = TimestampMemo(readableFrom: s.p)
        while s.p < s.end {
            if s.p < limit && s.p[0] != Byte.hash, let point = parseCommonLine(&s, &stops, &memo) {
                try body(.point(point))
                continue
            }
            switch otherEntry(&s) {
            case .entry(let entry): try body(entry)
            case .skipped: continue
            case .finished: return
            }
        }
    }

    /// What the full parser made of the entry at `s.p`.
    @usableFromInline
    enum OtherEntry {
        case entry(LineEntry)
        /// A blank or comment line.
        case skipped
        /// Only spaces (or a final CR) were left.
        case finished
    }

    /// The entry at `s.p` by the full parser: blank and comment lines, lines the fast path
    /// left, errors with recovery to the next line.
    @usableFromInline
    func otherEntry(_ s: inout Scanner) -> OtherEntry {
        let entryStart = s.p
        while s.p < s.end && s.p[0] == Byte.space { s.p += 1 }
        if s.p == s.end { return .finished }
        let c = s.p[0]
        let failure: DecodeError
        if c == Byte.lf {
            s.p += 1
            s.newLine()
            return .skipped
        } else if c == Byte.cr {
            if s.p + 1 == s.end { s.p += 1; return .finished }
            if s.p[1] == Byte.lf { s.p += 2; s.newLine(); return .skipped }
            failure = s.error(at: s.p, .loneCarriageReturn)
        } else if c == Byte.hash {
            guard let error = s.skipComment() else { return .skipped }
            failure = error
        } else {
            do {
                return .entry(.point(try parseLine(&s, entryStart: entryStart)))
            } catch {
                failure = error
            }
        }
        return .entry(.error(failure, raw: s.skipRestOfLine(from: entryStart)))
    }

    /// Decodes every line of `bytes`, as the raw-buffer variant does.
    public func forEachLine(in bytes: [UInt8], _ body: (LineEntry) throws -> Void) rethrows {
        try bytes.withUnsafeBytes { try forEachLine(in: $0, body) }
    }

    // MARK: - One line

    private func growTags() { Self.double(&tagStorage, &tagCapacity) }

    private func growFields() { Self.double(&fieldStorage, &fieldCapacity) }

    /// Doubles a view buffer (rare: a line with more tags or fields than any before it).
    private static func double<T>(_ storage: inout UnsafeMutablePointer<T>, _ capacity: inout Int) {
        let bigger = UnsafeMutablePointer<T>.allocate(capacity: capacity * 2)
        bigger.moveInitialize(from: storage, count: capacity)
        storage.deallocate()
        storage = bigger
        capacity *= 2
    }

    // The grammar: measurement{,tagkey=tagval} SP+ fieldkey=fieldval{,fieldkey=fieldval} [SP+ timestamp] SP* EOL
    private func parseLine(_ s: inout Scanner, entryStart: UnsafePointer<UInt8>) throws(DecodeError) -> PointView {
        let end = s.end
        let firstLine = s.line
        var q = s.p

        // Measurement.
        let mStart = q
        let mEscaped = try s.scanName(&q, stop: ByteClass.measurementStop, escapes: .measurement, element: .measurement)
        if q == mStart {
            let found: UInt8? = q < end ? q[0] : nil
            if let found, isControl(found) { throw s.error(at: q, .controlCharacter(found, in: .measurement)) }
            throw s.error(at: q, .emptyMeasurement(found: found))
        }
        let measurement = TokenView(start: mStart, count: q - mStart, escapes: mEscaped ? .measurement : .none)

        // Tags.
        var tagCount = 0
        if q < end && q[0] == Byte.comma {
            while true {
                q += 1
                let kStart = q
                let kEscaped = try s.scanName(&q, stop: ByteClass.keyStop, escapes: .key, element: .tagKey)
                let found: UInt8? = q < end ? q[0] : nil
                if q == kStart {
                    if let found, isControl(found) { throw s.error(at: q, .controlCharacter(found, in: .tagKey)) }
                    throw s.error(at: q, .expectedTagKey(found: found))
                }
                let key = TokenView(start: kStart, count: q - kStart, escapes: kEscaped ? .key : .none)
                guard found == Byte.equals else {
                    if let found, isControl(found) { throw s.error(at: q, .controlCharacter(found, in: .tagKey)) }
                    throw s.error(at: q, .expectedTagEquals(key: key.string, found: found))
                }
                q += 1
                let vStart = q
                let vEscaped = try s.scanName(&q, stop: ByteClass.keyStop, escapes: .key, element: .tagValue)
                let stop: UInt8? = q < end ? q[0] : nil
                if let stop, isControl(stop) && stop != Byte.lf && stop != Byte.cr {
                    throw s.error(at: q, .controlCharacter(stop, in: .tagValue))
                }
                if q == vStart { throw s.error(at: q, .emptyTagValue(key: key.string)) }
                if stop == Byte.equals { throw s.error(at: q, .unescapedEqualsInTagValue(key: key.string)) }
                // Keys are compared as written: each of `,` `=` space must be escaped, so the
                // escaped form of a key is unique and raw equality is key equality.
                for j in 0..<tagCount {
                    let other = tagStorage[j].key
                    if other.count == key.count && memcmp(other.start, key.start, key.count) == 0 {
                        throw s.error(at: kStart, .duplicateTagKey(key.string))
                    }
                }
                if tagCount == tagCapacity { growTags() }
                (tagStorage + tagCount).initialize(
                    to: TagView(key: key, value: TokenView(start: vStart, count: q - vStart, escapes: vEscaped ? .key : .none)))
                tagCount += 1
                if stop == Byte.comma { continue }
                if stop == Byte.space { break }
                throw s.error(at: q, .missingFields)
            }
        } else if q == end || q[0] == Byte.lf || q[0] == Byte.cr {
            throw s.error(at: q, .missingFields)
        } else if q[0] != Byte.space {
            throw s.error(at: q, .controlCharacter(q[0], in: .measurement))
        }

        // Fields.
        while q < end && q[0] == Byte.space { q += 1 }
        if q == end || q[0] == Byte.lf || q[0] == Byte.cr { throw s.error(at: q, .missingFields) }
        var fieldCount = 0
        var hasTimestampSection = false
        fields: while true {
            let kStart = q
            let kEscaped = try s.scanName(&q, stop: ByteClass.keyStop, escapes: .key, element: .fieldKey)
            let found: UInt8? = q < end ? q[0] : nil
            if q == kStart {
                if let found, isControl(found) && found != Byte.lf && found != Byte.cr {
                    throw s.error(at: q, .controlCharacter(found, in: .fieldKey))
                }
                throw s.error(at: q, .expectedFieldKey(found: found))
            }
            let key = TokenView(start: kStart, count: q - kStart, escapes: kEscaped ? .key : .none)
            guard found == Byte.equals else {
                if let found, isControl(found) && found != Byte.lf && found != Byte.cr {
                    throw s.error(at: q, .controlCharacter(found, in: .fieldKey))
                }
                throw s.error(at: q, .expectedFieldEquals(key: key.string, found: found))
            }
            q += 1
            guard q < end else { throw s.error(at: q, .missingFieldValue(key: key.string)) }
            let vStart = q
            let value: FieldValueView
            switch q[0] {
            case Byte.quote:
                value = .string(try s.scanString(&q, key: key))
            case UInt8(ascii: "t"), UInt8(ascii: "T"), UInt8(ascii: "f"), UInt8(ascii: "F"):
                let vEnd = s.scanValueToken(from: q)
                guard let b = parseBool(q, vEnd) else {
                    throw s.error(at: vStart, .invalidBoolean(key: key.string, text: text(q, vEnd)))
                }
                value = .bool(b)
                q = vEnd
            case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "0")...UInt8(ascii: "9"):
                let vEnd = s.scanValueToken(from: q)
                value = try parseNumber(&s, q, vEnd, key: key)
                q = vEnd
            case Byte.space, Byte.comma, Byte.lf, Byte.cr:
                throw s.error(at: q, .missingFieldValue(key: key.string))
            default:
                throw s.error(at: q, .unrecognizedFieldType(key: key.string, found: q[0]))
            }
            if fieldCount == fieldCapacity { growFields() }
            (fieldStorage + fieldCount).initialize(to: FieldView(key: key, value: value))
            fieldCount += 1
            guard q < end else { break fields }
            switch q[0] {
            case Byte.comma:
                q += 1
                continue fields
            case Byte.space:
                hasTimestampSection = true
                break fields
            case Byte.lf, Byte.cr:
                break fields
            default:
                throw s.error(at: q, .unexpectedAfterField(found: q[0]))
            }
        }

        // Timestamp.
        var timestamp: Int64?
        if hasTimestampSection {
            while q < end && q[0] == Byte.space { q += 1 }
            if q < end && q[0] != Byte.lf && q[0] != Byte.cr {
                let tStart = q
                // One pass: sign and digits (8 at a time); the byte after them must end the token.
                let negative = q[0] == UInt8(ascii: "-")
                let digitStart = negative ? q + 1 : q
                let digits = scanDigits(digitStart, end)
                q = digits.end
                if q < end && q[0] != Byte.space && q[0] != Byte.lf && q[0] != Byte.cr {
                    while q < end && q[0] != Byte.space && q[0] != Byte.lf && q[0] != Byte.cr { q += 1 }
                    throw s.error(at: tStart, .invalidTimestamp(text: text(tStart, q)))
                }
                switch int64Value(negative: negative, digitStart: digitStart, digits: digits) {
                case .value(let v):
                    guard let ns = precision.nanoseconds(v) else {
                        throw s.error(at: tStart, .timestampOutOfRange(text: text(tStart, q), precision: precision))
                    }
                    timestamp = ns
                case .outOfRange:
                    throw s.error(at: tStart, .timestampOutOfRange(text: text(tStart, q), precision: precision))
                case .invalid:
                    throw s.error(at: tStart, .invalidTimestamp(text: text(tStart, q)))
                }
                while q < end && q[0] == Byte.space { q += 1 }
                if q < end && q[0] != Byte.lf && q[0] != Byte.cr {
                    throw s.error(at: q, .unexpectedAfterTimestamp(found: q[0]))
                }
            }
        }

        // End of line: LF, CRLF, or CR/nothing at the end of the input.
        let contentEnd = q
        if q < end {
            if q[0] == Byte.lf {
                q += 1
                s.p = q
                s.newLine()
            } else if q + 1 == end {
                s.p = end
            } else if q[1] == Byte.lf {
                q += 2
                s.p = q
                s.newLine()
            } else {
                throw s.error(at: q, .loneCarriageReturn)
            }
        } else {
            s.p = end
        }
        return PointView(
            measurement: measurement,
            tags: UnsafeBufferPointer(start: tagStorage, count: tagCount),
            fields: UnsafeBufferPointer(start: fieldStorage, count: fieldCount),
            timestamp: timestamp,
            line: firstLine,
            raw: UnsafeBufferPointer(start: entryStart, count: contentEnd - entryStart)
        )
    }

    @inline(__always)
    private func parseNumber(
        _ s: inout Scanner, _ start: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>, key: TokenView
    ) throws(DecodeError) -> FieldValueView {
        switch end[-1] {
        case UInt8(ascii: "i"):
            switch parseInt(start, end - 1) {
            case .value(let v): return .int(v)
            case .invalid: throw s.error(at: start, .invalidNumber(key: key.string, text: text(start, end), type: .int))
            case .outOfRange: throw s.error(at: start, .numberOutOfRange(key: key.string, text: text(start, end), type: .int))
            }
        case UInt8(ascii: "u"):
            switch parseUInt(start, end - 1) {
            case .value(let v): return .uint(v)
            case .invalid: throw s.error(at: start, .invalidNumber(key: key.string, text: text(start, end), type: .uint))
            case .outOfRange: throw s.error(at: start, .numberOutOfRange(key: key.string, text: text(start, end), type: .uint))
            }
        default:
            switch parseFloat(start, end, powersOfTen: s.powersOfTen) {
            case .value(let v): return .float(v)
            case .invalid: throw s.error(at: start, .invalidNumber(key: key.string, text: text(start, end), type: .float))
            case .outOfRange: throw s.error(at: start, .numberOutOfRange(key: key.string, text: text(start, end), type: .float))
            }
        }
    }
}

/// Bytes with a meaning in the grammar.
@usableFromInline
enum Byte {
    @inlinable static var space: UInt8 { UInt8(ascii: " ") }
    @inlinable static var comma: UInt8 { UInt8(ascii: ",") }
    @inlinable static var equals: UInt8 { UInt8(ascii: "=") }
    @inlinable static var quote: UInt8 { UInt8(ascii: "\"") }
    @inlinable static var backslash: UInt8 { UInt8(ascii: "\\") }
    @inlinable static var hash: UInt8 { UInt8(ascii: "#") }
    @inlinable static var lf: UInt8 { UInt8(ascii: "\n") }
    @inlinable static var cr: UInt8 { UInt8(ascii: "\r") }
}

@inline(__always)
private func isControl(_ b: UInt8) -> Bool { b < 0x20 || b == 0x7F }

/// Text of a token for an error message (lossy for invalid UTF-8, which is fine there).
private func text(_ start: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> String {
    String(decoding: UnsafeBufferPointer(start: start, count: end - start), as: UTF8.self)
}
