/// Writes compact JSON straight into bytes, member after member, with the same spelling as
/// ``JSONValue/write(to:)`` (numbers, escaping) but without building the value tree first:
/// the job path writes a canonical start, a job row's JSON columns and a result per event.
public struct JSONStreamWriter {
    /// The text so far (UTF-8).
    public private(set) var bytes: [UInt8] = []
    /// A value was just completed: the next member or element needs a comma first.
    private var needsComma = false

    /// An empty text with room for `capacity` bytes.
    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    /// The text as a `String`.
    public var text: String { String(decoding: bytes, as: UTF8.self) }

    private mutating func separate() { if needsComma { bytes.append(0x2C) } }

    /// `{`: members follow (``key(_:)`` and a value each), then ``endObject()``.
    public mutating func beginObject() { separate(); bytes.append(0x7B); needsComma = false }
    /// `}`.
    public mutating func endObject() { bytes.append(0x7D); needsComma = true }
    /// `[`: values follow, then ``endArray()``.
    public mutating func beginArray() { separate(); bytes.append(0x5B); needsComma = false }
    /// `]`.
    public mutating func endArray() { bytes.append(0x5D); needsComma = true }

    /// A member's key (a literal that needs no escaping: the writer's own names).
    public mutating func key(_ name: StaticString) {
        separate()
        bytes.append(0x22)
        bytes.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        bytes.append(0x22)
        bytes.append(0x3A)
        needsComma = false
    }

    /// A member's key from data (escaped as needed).
    public mutating func key(_ name: String) {
        separate()
        JSONValue.writeString(name, to: &bytes)
        bytes.append(0x3A)
        needsComma = false
    }

    /// An integer.
    public mutating func value(_ v: Int64) { separate(); JSONValue.writeInteger(v, to: &bytes); needsComma = true }
    /// A string.
    public mutating func value(_ s: String) { separate(); JSONValue.writeString(s, to: &bytes); needsComma = true }
    /// A number, written as ``JSONValue/double(_:)`` is.
    public mutating func value(_ d: Double) { value(JSONValue.double(d)) }
    /// Any value.
    public mutating func value(_ v: JSONValue) { separate(); v.write(to: &bytes); needsComma = true }

    /// `key: value` for an integer.
    public mutating func member(_ name: StaticString, _ v: Int64) { key(name); value(v) }
    /// `key: value` for a string.
    public mutating func member(_ name: StaticString, _ s: String) { key(name); value(s) }
    /// `key: value` for a number.
    public mutating func member(_ name: StaticString, _ d: Double) { key(name); value(d) }

    /// An object of `map`'s members with the keys sorted (maps have no order of their own).
    public mutating func sortedObject<V>(_ map: [String: V], _ write: (inout JSONStreamWriter, V) -> Void) {
        beginObject()
        for k in map.keys.sorted() {
            key(k)
            write(&self, map[k]!)
        }
        endObject()
    }
}
