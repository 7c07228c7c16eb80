/// One tag of a point: key and value, unescaped.
public struct Tag: Sendable, Hashable {
    /// The tag key.
    public var key: String
    /// The tag value.
    public var value: String

    /// Creates a tag.
    public init(_ key: String, _ value: String) {
        self.key = key
        self.value = value
    }
}

/// One field of a point: key (unescaped) and typed value.
public struct Field: Sendable, Hashable {
    /// The field key.
    public var key: String
    /// The field value.
    public var value: FieldValue

    /// Creates a field.
    public init(_ key: String, _ value: FieldValue) {
        self.key = key
        self.value = value
    }
}

/// An owned, decoded line-protocol point: the convenient form for tests, tools and
/// low-rate paths. Hot paths use ``PointView`` instead, which does not allocate.
public struct Point: Sendable, Hashable {
    /// The measurement name.
    public var measurement: String
    /// The tags, in input order (or the order given to the encoder).
    public var tags: [Tag]
    /// The fields, in input order; at least one in a valid point.
    public var fields: [Field]
    /// The timestamp in nanoseconds after precision scaling, or nil when the line had none.
    public var timestamp: Int64?

    /// Creates a point.
    public init(measurement: String, tags: [Tag] = [], fields: [Field], timestamp: Int64? = nil) {
        self.measurement = measurement
        self.tags = tags
        self.fields = fields
        self.timestamp = timestamp
    }

    /// The value of the first tag with this key.
    public func tag(_ key: String) -> String? {
        tags.first { $0.key == key }?.value
    }

    /// The value of the first field with this key.
    public func field(_ key: String) -> FieldValue? {
        fields.first { $0.key == key }?.value
    }
}
