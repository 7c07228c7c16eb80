import LineProtocol

/// A message's lines decoded before its batch is applied: on the thread that fetched it,
/// while the writer applies the batch before (see ``StageProcessor/predecode(_:)``). Only
/// for stages whose handler decodes without the database (``LineHandler/predecoder``).
public final class DecodedLines: Sendable {
    /// One line: refused by the line-protocol decoder, or decoded by the stage's handler.
    public enum Line: Sendable {
        /// Not line protocol: the decoder's error and the line's text.
        case error(DecodeError, raw: String)
        /// A point; `value` is what the handler's ``LineHandler/predecoder`` made of it.
        case point(line: Int, raw: String, value: any Sendable)
    }

    /// The message's lines, in order.
    public let lines: [Line]

    init(_ lines: [Line]) {
        self.lines = lines
    }
}
