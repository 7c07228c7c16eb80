import LineProtocol

/// A value with the column (in its line) it came from.
public struct Located<Value: Sendable & Error>: Error, Sendable {
    /// 1-based column.
    public let column: Int
    /// The value.
    public let value: Value

    /// Creates a located value.
    public init(column: Int, _ value: Value) {
        self.column = column
        self.value = value
    }
}

/// ClusterCockpit's event envelope: a line whose string field `event` holds JSON.
public enum EventLine {
    /// Why a line carries no usable event JSON.
    public enum Failure: Error, Sendable, Equatable {
        /// No string field `event` (cc-backend skips such lines as non-events).
        case notAnEvent(String)
        /// The JSON does not parse.
        case invalidJSON(String)
    }

    /// The parsed JSON of field `event`, and the 1-based column of that field.
    public static func json(_ view: PointView) -> Result<(json: JSONValue, column: Int), Located<Failure>> {
        var token: TokenView?
        var eventColumn = 1
        for field in view.fields where field.key.equals("event") {
            eventColumn = column(of: field.key.start, in: view)
            guard case .string(let t) = field.value else {
                return .failure(Located(column: eventColumn, .notAnEvent("field event is not a quoted string")))
            }
            token = t
        }
        guard let token else { return .failure(Located(column: 1, .notAnEvent("no string field \"event\""))) }
        do {
            let json = try token.withUnescapedBytes { bytes throws(JSONParseError) in try JSONValue.parse(bytes) }
            return .success((json, eventColumn))
        } catch {
            return .failure(Located(column: eventColumn, .invalidJSON("event: \(error)")))
        }
    }

    /// The string field `event` (the last one, as ``json(_:)`` reads) and its column; nil when
    /// there is none or it is not a string.
    public static func eventToken(_ view: PointView) -> (token: TokenView, column: Int)? {
        var found: (TokenView, Int)?
        for field in view.fields where field.key.equals("event") {
            guard case .string(let t) = field.value else { return nil }
            found = (t, column(of: field.key.start, in: view))
        }
        return found
    }

    /// The 1-based column of `pointer` inside the line of `view`.
    public static func column(of pointer: UnsafePointer<UInt8>, in view: PointView) -> Int {
        guard let base = view.raw.baseAddress else { return 1 }
        let offset = pointer - base
        return offset >= 0 && offset <= view.raw.count ? offset + 1 : 1
    }
}
