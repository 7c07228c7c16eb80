/// The fast path's last converted timestamp, keyed by its text.
///
/// The lines of a metric batch nearly always share one timestamp (a collector stamps all
/// metrics of one read with the same time), so comparing the text with the previous line's
/// — three masked 8-byte words ending at the token's end — replaces the digit conversion
/// and the precision scaling. Different text always converts afresh, so the result is the
/// same as without the memo.
@usableFromInline
struct TimestampMemo {
    /// Any byte from here on may be loaded (the start of the buffer being decoded).
    @usableFromInline let readableFrom: UnsafePointer<UInt8>
    /// Length of the remembered text, sign included; -1 while nothing is remembered (no
    /// text has that length, so an empty memo never matches and never loads).
    @usableFromInline var count = -1
    /// The text's bytes within the 24 bytes ending at its end, low word last.
    @usableFromInline var words: (UInt64, UInt64, UInt64) = (0, 0, 0)
    /// Which bytes of `words` belong to the text.
    @usableFromInline var masks: (UInt64, UInt64, UInt64) = (0, 0, 0)
    @usableFromInline var nanoseconds: Int64 = 0

    @inlinable
    init(readableFrom: UnsafePointer<UInt8>) {
        self.readableFrom = readableFrom
    }

    /// The remembered nanoseconds when the `count` bytes ending at `end` are the remembered text.
    @inlinable @inline(__always)
    func lookup(endingAt end: UnsafePointer<UInt8>, count: Int) -> Int64? {
        guard count == self.count else { return nil }
        let w = Self.load(end)
        // One branch for the three words: the text is the same when no masked bit differs.
        let differing = ((w.0 ^ words.0) & masks.0) | ((w.1 ^ words.1) & masks.1) | ((w.2 ^ words.2) & masks.2)
        return differing == 0 ? nanoseconds : nil
    }

    /// Remembers the `count` bytes (at most 24) ending at `end` as converting to `nanoseconds`.
    @inlinable @inline(__always)
    mutating func remember(endingAt end: UnsafePointer<UInt8>, count: Int, nanoseconds: Int64) {
        guard count <= 24, end - 24 >= readableFrom else { return }
        masks = (Self.topBytes(count), Self.topBytes(count - 8), Self.topBytes(count - 16))
        let w = Self.load(end)
        words = (w.0 & masks.0, w.1 & masks.1, w.2 & masks.2)
        self.count = count
        self.nanoseconds = nanoseconds
    }

    /// The three words holding the 24 bytes before `end` (the nearest first). A memo entry
    /// exists only where those bytes are readable, and `lookup` loads only on equal counts.
    @inlinable @inline(__always)
    static func load(_ end: UnsafePointer<UInt8>) -> (UInt64, UInt64, UInt64) {
        let raw = UnsafeRawPointer(end)
        return (raw.loadUnaligned(fromByteOffset: -8, as: UInt64.self).littleEndian,
                raw.loadUnaligned(fromByteOffset: -16, as: UInt64.self).littleEndian,
                raw.loadUnaligned(fromByteOffset: -24, as: UInt64.self).littleEndian)
    }

    /// A mask of the highest `n` bytes of a little-endian word (none for n <= 0, all for n >= 8).
    @inlinable @inline(__always)
    static func topBytes(_ n: Int) -> UInt64 {
        if n <= 0 { return 0 }
        if n >= 8 { return ~0 }
        return ~0 << UInt64(8 * (8 - n))
    }
}
