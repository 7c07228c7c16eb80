import LineProtocol
import Testing

@Suite("Timestamps and precision")
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
}
