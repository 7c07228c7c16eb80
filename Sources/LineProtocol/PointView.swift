/// A decoded line that still points into the caller's buffer: the zero-allocation form.
///
/// Valid only inside the ``LineDecoder/forEachLine(in:_:)`` callback; call
/// ``makePoint()`` to keep it.
public struct PointView {
    /// The measurement name.
    public let measurement: TokenView
    /// The tags in input order (storage owned by the decoder, reused for the next line).
    public let tags: UnsafeBufferPointer<TagView>
    /// The fields in input order (storage owned by the decoder, reused for the next line).
    public let fields: UnsafeBufferPointer<FieldView>
    /// Timestamp in nanoseconds after precision scaling; nil when the line had none.
    public let timestamp: Int64?
    /// 1-based line number where the point starts.
    public let line: Int
    /// The line as written (without its line ending), for dead letters and logs.
    public let raw: UnsafeBufferPointer<UInt8>

    @usableFromInline
    init(measurement: TokenView, tags: UnsafeBufferPointer<TagView>, fields: UnsafeBufferPointer<FieldView>,
         timestamp: Int64?, line: Int, raw: UnsafeBufferPointer<UInt8>) {
        self.measurement = measurement
        self.tags = tags
        self.fields = fields
        self.timestamp = timestamp
        self.line = line
        self.raw = raw
    }

    /// The value of the first tag whose unescaped key equals `key`.
    @inlinable
    public func tag(_ key: StaticString) -> TokenView? {
        for tag in tags where tag.key.equals(key) { return tag.value }
        return nil
    }

    /// The value of the first field whose unescaped key equals `key`.
    @inlinable
    public func field(_ key: StaticString) -> FieldValueView? {
        for field in fields where field.key.equals(key) { return field.value }
        return nil
    }

    /// Copies the point out of the buffer.
    public func makePoint() -> Point {
        Point(
            measurement: measurement.string,
            tags: tags.map { Tag($0.key.string, $0.value.string) },
            fields: fields.map { Field($0.key.string, $0.value.value) },
            timestamp: timestamp
        )
    }
}

/// One entry of a decoded buffer: a point, or the error of a line that was skipped.
public enum LineEntry {
    /// A valid line.
    case point(PointView)
    /// A rejected line; `raw` is its text (without the line ending) for dead letters.
    case error(DecodeError, raw: UnsafeBufferPointer<UInt8>)
}
