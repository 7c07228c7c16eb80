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
        eventToken(view).flatMap { found in
            found.token.withUnescapedBytes { json($0, column: found.column) }.map { ($0, found.column) }
        }
    }

    /// The string field `event` (the last one) and its 1-based column.
    public static func eventToken(_ view: PointView) -> Result<(token: TokenView, column: Int), Located<Failure>> {
        var found: (token: TokenView, column: Int)?
        for field in view.fields where field.key.equals("event") {
            let eventColumn = column(of: field.key.start, in: view)
            guard case .string(let t) = field.value else {
                return .failure(Located(column: eventColumn, .notAnEvent("field event is not a quoted string")))
            }
            found = (t, eventColumn)
        }
        guard let found else { return .failure(Located(column: 1, .notAnEvent("no string field \"event\""))) }
        return .success(found)
    }

    /// The JSON of an `event` field's unescaped `bytes`; a parse error is blamed on `column`.
    public static func json(_ bytes: UnsafeBufferPointer<UInt8>, column: Int) -> Result<JSONValue, Located<Failure>> {
        do {
            return .success(try JSONValue.parse(bytes))
        } catch {
            return .failure(Located(column: column, .invalidJSON("event: \(error)")))
        }
    }

    /// The 1-based column of `pointer` inside the line of `view`.
    public static func column(of pointer: UnsafePointer<UInt8>, in view: PointView) -> Int {
        guard let base = view.raw.baseAddress else { return 1 }
        let offset = pointer - base
        return offset >= 0 && offset <= view.raw.count ? offset + 1 : 1
    }
}
