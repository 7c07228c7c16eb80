/// Decoding into owned values, for callers that keep what they decode (tests, the CLI).
extension LineDecoder {
    /// Decodes a whole buffer into owned values: points and errors in line order.
    public func decode(_ bytes: [UInt8]) -> [Result<Point, DecodeError>] {
        var out: [Result<Point, DecodeError>] = []
        forEachLine(in: bytes) { entry in
            switch entry {
            case .point(let view): out.append(.success(view.makePoint()))
            case .error(let error, _): out.append(.failure(error))
            }
        }
        return out
    }

    /// Decodes a string's UTF-8 bytes into owned values.
    public func decode(_ text: String) -> [Result<Point, DecodeError>] {
        decode(Array(text.utf8))
    }
}
