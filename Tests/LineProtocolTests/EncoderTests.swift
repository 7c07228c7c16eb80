import LineProtocol
import PropertyBased
import Testing

/// Characters that stress escaping: every delimiter, backslashes, quotes, `#`, multi-byte.
private let nameAlphabet: [Character] = Array("ab,= \\\"#'xyz_-.:/\u{e9}\u{1F600}\u{4E2D}")
/// Names: non-empty, no trailing backslash (line protocol cannot represent one).
private let nameGen = Gen<Character?>.element(of: nameAlphabet).map { $0! }.string(of: 1...10)
    .map { $0.hasSuffix("\\") ? $0 + "q" : $0 }
private let measurementGen = nameGen.map { $0.hasPrefix("#") ? "m" + $0 : $0 }
private let stringAlphabet: [Character] = Array("ab \"\\\n\r\t,=#{}:\u{1}\u{e9}\u{1F600}nrt")
private let stringGen = Gen<Character?>.element(of: stringAlphabet).map { $0! }.string(of: 0...16)

/// Float edges that a uniform draw would never hit.
private let floatEdges: [Double] = [0.0, -0.0, 0.1, .leastNonzeroMagnitude, .greatestFiniteMagnitude, -.greatestFiniteMagnitude, 1e-300, 123456789.125]

/// A random value of every field type, edges included: the kind is drawn first, then the
/// raw material for each kind.
private let valueGen = zip(Gen.int(in: 0...9), Gen.uint64(), Gen.double(in: -1e300...1e300), stringGen)
    .map { kind, bits, double, string -> FieldValue in
        switch kind {
        case 0: return .float(double)
        case 1: return .float(floatEdges[Int(bits % UInt64(floatEdges.count))])
        case 2:
            let d = Double(bitPattern: bits)
            return .float(d.isFinite ? d : 1)
        case 3: return .int(Int64(bitPattern: bits))
        case 4: return .int([Int64.min, Int64.max, 0, -1][Int(bits % 4)])
        case 5: return .uint(bits)
        case 6: return .uint(bits % 2 == 0 ? UInt64.max : 0)
        case 7, 8: return .string(string)
        default: return .bool(bits % 2 == 0)
        }
    }

private let timestampGen = zip(Gen.int(in: 0...3), Gen.int64()).map { kind, v -> Int64? in
    switch kind {
    case 0: nil
    case 1: v % 2 == 0 ? Int64.min : Int64.max
    default: v
    }
}

private let pointGen = zip(
    measurementGen,
    zip(nameGen, nameGen).map { Tag($0, $1) }.array(of: 0...5),
    zip(nameGen, valueGen).map { Field($0, $1) }.array(of: 1...6),
    timestampGen
).map { measurement, tags, fields, timestamp in
    // Duplicate tag keys are rejected by the decoder; keep the first of each key.
    var seen = Set<String>()
    let unique = tags.filter { seen.insert($0.key).inserted }
    return Point(measurement: measurement, tags: unique, fields: fields, timestamp: timestamp)
}

@Suite("Encoder", .timeLimit(.minutes(3)))
struct EncoderTests {
    @Test("decode(encode(p)) == p for random points, escapes and all value types included")
    func roundTrip() async {
        await propertyCheck(count: 2000, input: pointGen) { point in
            let encoded: [UInt8]
            do { encoded = try LineEncoder().encode(point) } catch {
                Issue.record("encode failed: \(error) for \(point)")
                return
            }
            let decoded = LineDecoder().decode(encoded)
            #expect(decoded.count == 1)
            #expect((try? decoded.first?.get()) == point, "line: \(String(decoding: encoded, as: UTF8.self).debugDescription)")
        }
    }

    @Test("a batch of random points round-trips line by line")
    func batchRoundTrip() async {
        await propertyCheck(count: 200, input: pointGen.array(of: 1...20)) { points in
            guard let encoded = try? LineEncoder().encode(points) else { Issue.record("encode failed"); return }
            let decoded = LineDecoder().decode(encoded).compactMap { try? $0.get() }
            #expect(decoded == points)
        }
    }

    @Test("escaping per element and value forms")
    func exactOutput() throws {
        let p = Point(
            measurement: "c pu,=x",
            tags: [Tag("z k", "a,b"), Tag("a=k", "v=1")],
            fields: [
                Field("f k", .float(0.64)), Field("i", .int(-3)), Field("u", .uint(7)), Field("b", .bool(false)),
                Field("s", .string("say \"hi\"\\\n")),
            ],
            timestamp: 1_434_055_562_000_000_000
        )
        let given = String(decoding: try LineEncoder().encode(p), as: UTF8.self)
        #expect(given == #"c\ pu\,=x,z\ k=a\,b,a\=k=v\=1 f\ k=0.64,i=-3i,u=7u,b=false,s="say \"hi\"\\\n" 1434055562000000000"# + "\n")
        let sorted = String(decoding: try LineEncoder(precision: .seconds, sortTags: true).encode(p), as: UTF8.self)
        #expect(sorted.hasPrefix(#"c\ pu\,=x,a\=k=v\=1,z\ k=a\,b "#))
        #expect(sorted.hasSuffix(" 1434055562\n"))
    }

    @Test("unrepresentable points are refused with a reason")
    func refusals() {
        #expect(throws: EncodeError.noFields) { try LineEncoder().encode(Point(measurement: "m", fields: [])) }
        #expect(throws: EncodeError.emptyName(.tagValue)) {
            try LineEncoder().encode(Point(measurement: "m", tags: [Tag("k", "")], fields: [Field("v", .int(1))]))
        }
        #expect(throws: EncodeError.trailingBackslash(.fieldKey, "v\\")) {
            try LineEncoder().encode(Point(measurement: "m", fields: [Field("v\\", .int(1))]))
        }
        #expect(throws: EncodeError.measurementStartsWithHash("#m")) {
            try LineEncoder().encode(Point(measurement: "#m", fields: [Field("v", .int(1))]))
        }
        #expect(throws: EncodeError.nonFiniteFloat(key: "v")) {
            try LineEncoder().encode(Point(measurement: "m", fields: [Field("v", .float(.nan))]))
        }
        #expect(throws: EncodeError.controlCharacter(.tagKey, "a\tb")) {
            try LineEncoder().encode(Point(measurement: "m", tags: [Tag("a\tb", "x")], fields: [Field("v", .int(1))]))
        }
    }
}
