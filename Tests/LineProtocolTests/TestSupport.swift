import LineProtocol
import Testing

/// Decodes `text` and returns every entry.
func decodeAll(_ text: String, precision: Precision = .nanoseconds) -> [Result<Point, DecodeError>] {
    LineDecoder(precision: precision).decode(text)
}

/// Decodes bytes and returns every entry.
func decodeAll(bytes: [UInt8], precision: Precision = .nanoseconds) -> [Result<Point, DecodeError>] {
    LineDecoder(precision: precision).decode(bytes)
}

/// The single point `text` must decode to.
func point(_ text: String, precision: Precision = .nanoseconds, sourceLocation: SourceLocation = #_sourceLocation) -> Point? {
    let entries = decodeAll(text, precision: precision)
    #expect(entries.count == 1, "expected one entry for \(text.debugDescription), got \(entries)", sourceLocation: sourceLocation)
    guard entries.count == 1 else { return nil }
    switch entries[0] {
    case .success(let p): return p
    case .failure(let e):
        Issue.record("expected a point for \(text.debugDescription), got error \(e)", sourceLocation: sourceLocation)
        return nil
    }
}

/// The single error `text` must decode to.
func failure(_ text: String, precision: Precision = .nanoseconds, sourceLocation: SourceLocation = #_sourceLocation) -> DecodeError? {
    let entries = decodeAll(text, precision: precision)
    #expect(entries.count == 1, "expected one entry for \(text.debugDescription), got \(entries)", sourceLocation: sourceLocation)
    guard entries.count == 1 else { return nil }
    switch entries[0] {
    case .success(let p):
        Issue.record("expected an error for \(text.debugDescription), got \(p)", sourceLocation: sourceLocation)
        return nil
    case .failure(let e): return e
    }
}

/// The value of the only field of the single point `text` decodes to.
func onlyValue(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> FieldValue? {
    guard let p = point(text, sourceLocation: sourceLocation) else { return nil }
    #expect(p.fields.count == 1, sourceLocation: sourceLocation)
    return p.fields.first?.value
}
