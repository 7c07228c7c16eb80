import LineProtocol
import Testing

@Suite("Timestamps and precision", .timeLimit(.minutes(3)))
struct TimestampTests {
    @Test("precision scales to nanoseconds", arguments: [
        (Precision.nanoseconds, "1434055562000000000", Int64(1_434_055_562_000_000_000)),
        (.microseconds, "1434055562000000", 1_434_055_562_000_000_000),
        (.milliseconds, "1434055562000", 1_434_055_562_000_000_000),
        (.seconds, "1434055562", 1_434_055_562_000_000_000),
        (.seconds, "-1", -1_000_000_000),
        (.nanoseconds, "-9223372036854775808", Int64.min),
        (.nanoseconds, "9223372036854775807", Int64.max),
        (.seconds, "9223372036", 9_223_372_036_000_000_000),
        (.nanoseconds, "0000000000000000000000001", 1),
    ])
    func scaling(precision: Precision, text: String, expected: Int64) {
        #expect(point("m v=1 \(text)", precision: precision)?.timestamp == expected)
    }

    @Test("overflow after scaling is an error, never a wrap", arguments: [
        (Precision.seconds, "9223372037"), (.milliseconds, "9223372036855"), (.microseconds, "9223372036854776"),
        (.nanoseconds, "9223372036854775808"), (.seconds, "-9223372037"),
    ])
    func overflow(precision: Precision, text: String) {
        let e = failure("m v=1 \(text)", precision: precision)
        #expect(e?.reason == .timestampOutOfRange(text: text, precision: precision))
        #expect(e?.column == 7)
    }

    @Test("the timestamp is optional; trailing spaces are fine")
    func optional() {
        #expect(point("m v=1")?.timestamp == nil)
        #expect(point("m v=1   ")?.timestamp == nil)
        #expect(point("m v=1 5   ")?.timestamp == 5)
        #expect(point("m v=1   5")?.timestamp == 5)
    }

    @Test("invalid timestamps", arguments: ["+5", "5.0", "1e9", "\"5\"", "-", "12a", "0x10", "5,6"])
    func invalid(text: String) {
        #expect(failure("m v=1 \(text)")?.reason == .invalidTimestamp(text: text))
    }

    @Test("text after the timestamp is an error")
    func trailingText() {
        let e = failure("m v=1 5 6")
        #expect(e?.reason == .unexpectedAfterTimestamp(found: UInt8(ascii: "6")))
        #expect(e?.column == 9)
    }

    /// The fast path remembers the last timestamp's text; a line with other text of the same
    /// length (differing in any of the 24 bytes compared, or in the sign) must convert afresh,
    /// and a bad timestamp after a good one must still be an error.
    @Test("consecutive timestamps: the same text is reused, similar text is converted")
    func consecutive() throws {
        let stamps = [
            "1718001260", "1718001260", "1718001261", "2718001260", "1718001260",
            "-718001260", "1718001260", "12a8001260", "1718001260",
            "1602841605822791506", "1602841605822791506", "1612841605822791506", "1602841605822791507",
            "1602841605822791506", "-602841605822791506", "5", "-", "5", "6",
        ]
        let text = "m v=1 5\n" + stamps.map { "cpu,host=a value=1 \($0)\n" }.joined()
        let bytes = Array(text.utf8)
        let decoded = LineDecoder(precision: .nanoseconds).decode(bytes)
        #expect(decoded.count == stamps.count + 1)
        for (stamp, entry) in zip(stamps, decoded.dropFirst()) {
            switch entry {
            case .success(let p): #expect(p.timestamp == Int64(stamp), "\(stamp)")
            case .failure: #expect(Int64(stamp) == nil, "\(stamp) rejected")
            }
        }
        #expect(describeEntries(bytes, fastPath: true) == describeEntries(bytes, fastPath: false))
    }
}
