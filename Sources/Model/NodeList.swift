/// A ClusterCockpit / Slurm host list expression: comma-separated terms, each a prefix with
/// optional bracketed ranges and lists, e.g. `f[0101-0188,0201-0288],fritz-login[1-2]`.
/// Zero padding is kept: `f[0101-0103]` is `f0101 f0102 f0103`.
public struct NodeList: Sendable, Equatable, CustomStringConvertible {
    enum Segment: Sendable, Equatable {
        case literal(String)
        /// Alternatives: each a numeric range with its printed width.
        case set([(ClosedRange<Int>, width: Int)])

        static func == (a: Segment, b: Segment) -> Bool {
            switch (a, b) {
            case let (.literal(x), .literal(y)): x == y
            case let (.set(x), .set(y)): x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.width == $1.width }
            default: false
            }
        }
    }

    /// The expression as written.
    public let expression: String
    let terms: [[Segment]]

    /// Why an expression is invalid.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        /// The expression.
        public let expression: String
        /// What is wrong.
        public let reason: String
        public var description: String { "invalid node list \"\(expression)\": \(reason)" }
    }

    /// Parses `expression`.
    public init(_ expression: String) throws(ParseError) {
        self.expression = expression
        var terms: [[Segment]] = []
        var current: [Segment] = []
        var literal = ""
        var chars = Array(expression)[...]
        func fail(_ r: String) -> ParseError { ParseError(expression: expression, reason: r) }
        while let c = chars.first {
            chars = chars.dropFirst()
            switch c {
            case ",":
                if !literal.isEmpty { current.append(.literal(literal)); literal = "" }
                if current.isEmpty { throw fail("empty term") }
                terms.append(current)
                current = []
            case "[":
                if !literal.isEmpty { current.append(.literal(literal)); literal = "" }
                guard let close = chars.firstIndex(of: "]") else { throw fail("'[' without ']'") }
                let body = String(chars[chars.startIndex..<close])
                chars = chars[chars.index(after: close)...]
                var alternatives: [(ClosedRange<Int>, width: Int)] = []
                for part in body.split(separator: ",", omittingEmptySubsequences: false) {
                    let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
                    guard (1...2).contains(bounds.count), bounds.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
                          let lo = Int(bounds[0]), let hi = Int(bounds[bounds.count - 1]) else {
                        throw fail("range \"\(part)\" is not N or N-M")
                    }
                    if bounds.count == 2, bounds[0].count != bounds[1].count { throw fail("range \"\(part)\" has bounds of different widths") }
                    if lo > hi { throw fail("range \"\(part)\" runs backwards") }
                    alternatives.append((lo...hi, bounds[0].count))
                }
                current.append(.set(alternatives))
            case "]":
                throw fail("']' without '['")
            default:
                literal.append(c)
            }
        }
        if !literal.isEmpty { current.append(.literal(literal)) }
        if !current.isEmpty { terms.append(current) } else if !terms.isEmpty { throw fail("empty term") }
        self.terms = terms
    }

    public var description: String { expression }

    /// Whether `hostname` is in the list (without expanding it).
    public func contains(_ hostname: String) -> Bool {
        let host = Array(hostname.utf8)[...]
        return terms.contains { Self.match($0[...], host) }
    }

    private static func match(_ segments: ArraySlice<Segment>, _ rest: ArraySlice<UInt8>) -> Bool {
        guard let first = segments.first else { return rest.isEmpty }
        switch first {
        case .literal(let s):
            let bytes = Array(s.utf8)
            guard rest.starts(with: bytes) else { return false }
            return match(segments.dropFirst(), rest.dropFirst(bytes.count))
        case .set(let alternatives):
            for (range, width) in alternatives {
                guard rest.count >= width else { continue }
                let digits = rest.prefix(width)
                guard digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                      let n = Int(String(decoding: digits, as: UTF8.self)), range.contains(n) else { continue }
                if match(segments.dropFirst(), rest.dropFirst(width)) { return true }
            }
            return false
        }
    }

    /// Every host name, in order (Slurm's hostlist expansion).
    public func expanded() -> [String] {
        var out: [String] = []
        for term in terms {
            var names = [""]
            for segment in term {
                switch segment {
                case .literal(let s): names = names.map { $0 + s }
                case .set(let alternatives):
                    var next: [String] = []
                    for name in names {
                        for (range, width) in alternatives {
                            for n in range {
                                let digits = String(n)
                                next.append(name + String(repeating: "0", count: max(0, width - digits.count)) + digits)
                            }
                        }
                    }
                    names = next
                }
            }
            out += names
        }
        return out
    }
}
