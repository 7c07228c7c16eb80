import CSQLite

/// A value bound to or read from a statement.
public enum SQLValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
}

/// A prepared statement. Bind parameters by position (1-based), then step through rows.
public final class Statement {
    let stmt: OpaquePointer
    unowned let database: Database
    let sql: String

    init(database: Database, sql: String) throws(StoreError) {
        var handle: OpaquePointer?
        let rc = sqlite3_prepare_v3(database.db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &handle, nil)
        guard rc == SQLITE_OK, let handle else { throw database.error(rc, "prepare \(sql.prefix(80))") }
        stmt = handle
        self.database = database
        self.sql = sql
    }

    deinit { sqlite3_finalize(stmt) }

    func reset() {
        sqlite3_reset(stmt)
        sqlite3_clear_bindings(stmt)
    }

    /// Binds `values` to parameters 1...n.
    @discardableResult
    public func bind(_ values: [SQLValue]) throws(StoreError) -> Statement {
        sqlite3_reset(stmt)
        for (i, value) in values.enumerated() {
            let index = Int32(i + 1)
            let rc: Int32
            switch value {
            case .null: rc = sqlite3_bind_null(stmt, index)
            case .integer(let v): rc = sqlite3_bind_int64(stmt, index, v)
            case .real(let v): rc = sqlite3_bind_double(stmt, index, v)
            case .text(let v): rc = sqlite3_bind_text(stmt, index, v, -1, csqlite_transient())
            case .blob(let v):
                rc = v.withUnsafeBytes { sqlite3_bind_blob(stmt, index, $0.baseAddress, Int32($0.count), csqlite_transient()) }
            }
            if rc != SQLITE_OK { throw database.error(rc, "bind parameter \(index) of \(sql.prefix(60))") }
        }
        return self
    }

    /// Advances to the next row; false when done.
    public func step() throws(StoreError) -> Bool {
        let rc = sqlite3_step(stmt)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        throw database.error(rc, String(sql.prefix(80)))
    }

    /// Runs the statement to completion (inserts, updates).
    public func run(_ values: [SQLValue] = []) throws(StoreError) {
        try bind(values)
        // Reset on every way out: a statement left active after an error (SQLITE_BUSY) would
        // keep its read transaction open on the shared writer connection.
        defer { sqlite3_reset(stmt) }
        while try step() {}
    }

    /// All rows, each read by `row`.
    public func rows<T>(_ values: [SQLValue] = [], _ row: (Statement) -> T) throws(StoreError) -> [T] {
        try bind(values)
        defer { sqlite3_reset(stmt) }
        var out: [T] = []
        while try step() { out.append(row(self)) }
        return out
    }

    /// The first row, read by `row`, or nil.
    public func first<T>(_ values: [SQLValue] = [], _ row: (Statement) -> T) throws(StoreError) -> T? {
        try bind(values)
        defer { sqlite3_reset(stmt) }
        return try step() ? row(self) : nil
    }

    /// Columns of a result row.
    public var columnCount: Int32 { sqlite3_column_count(stmt) }
    /// Column `i` (0-based) as an integer (0 for NULL).
    public func int(_ i: Int32) -> Int64 { sqlite3_column_int64(stmt, i) }
    /// Column `i` as a double.
    public func double(_ i: Int32) -> Double { sqlite3_column_double(stmt, i) }
    /// Column `i` is NULL.
    public func isNull(_ i: Int32) -> Bool { sqlite3_column_type(stmt, i) == SQLITE_NULL }
    /// Column `i` as text ("" for NULL).
    public func text(_ i: Int32) -> String {
        guard let p = sqlite3_column_text(stmt, i) else { return "" }
        return String(cString: p)
    }
    /// Column `i` as text, nil for NULL.
    public func optionalText(_ i: Int32) -> String? { isNull(i) ? nil : text(i) }
    /// Column `i` as bytes.
    public func blob(_ i: Int32) -> [UInt8] {
        let n = Int(sqlite3_column_bytes(stmt, i))
        guard n > 0, let p = sqlite3_column_blob(stmt, i) else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: n))
    }
}
