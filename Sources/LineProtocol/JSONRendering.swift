/// JSON renderings of decode results, shared by `clusterd lp decode` and dead letters so
/// that what an operator sees is exactly what the pipeline decoded.
public enum DecodeJSON {
    /// `{"measurement": ..., "tags": {...}, "fields": {"k": {"type": ..., "value": ...}}, "timestamp": n|null}`
    /// with tags and fields in input order, integers exact and floats in their shortest
    /// round-tripping form.
    public static func render(_ point: Point) -> String {
        var out = "{\"measurement\": "
        appendString(point.measurement, to: &out)
        out += ", \"tags\": {"
        for (i, tag) in point.tags.enumerated() {
            if i > 0 { out += ", " }
            appendString(tag.key, to: &out)
            out += ": "
            appendString(tag.value, to: &out)
        }
        out += "}, \"fields\": {"
        for (i, field) in point.fields.enumerated() {
            if i > 0 { out += ", " }
            appendString(field.key, to: &out)
            out += ": {\"type\": \"\(field.value.typeName)\", \"value\": "
            switch field.value {
            case .float(let v): out += v.description
            case .int(let v): out += String(v)
            case .uint(let v): out += String(v)
            case .bool(let v): out += v ? "true" : "false"
            case .string(let v): appendString(v, to: &out)
            }
            out += "}"
        }
        out += "}, \"timestamp\": "
        out += point.timestamp.map { String($0) } ?? "null"
        out += "}"
        return out
    }

    /// `{"error": "reason", "line": L, "column": C}`
    public static func render(_ error: DecodeError) -> String {
        var out = "{\"error\": "
        appendString(error.reason.description, to: &out)
        out += ", \"line\": \(error.line), \"column\": \(error.column)}"
        return out
    }

    static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Appends `s` as a JSON string literal, as UTF-8 bytes (control characters escaped, UTF-8
    /// kept): runs that need no escape are copied whole.
    public static func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(0x22)
        var text = s
        text.withUTF8 { bytes in
            var start = 0
            for i in 0..<bytes.count {
                let b = bytes[i]
                guard b < 0x20 || b == 0x22 || b == 0x5C || b == 0x7F else { continue }
                if start < i { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<i])) }
                start = i + 1
                switch b {
                case 0x22: out.append(contentsOf: [0x5C, 0x22])
                case 0x5C: out.append(contentsOf: [0x5C, 0x5C])
                case 0x0A: out.append(contentsOf: [0x5C, 0x6E])
                case 0x0D: out.append(contentsOf: [0x5C, 0x72])
                case 0x09: out.append(contentsOf: [0x5C, 0x74])
                case 0x08: out.append(contentsOf: [0x5C, 0x62])
                case 0x0C: out.append(contentsOf: [0x5C, 0x66])
                default:  // \u00XX
                    out.append(contentsOf: [0x5C, 0x75, 0x30, 0x30, hexDigits[Int(b >> 4)], hexDigits[Int(b & 0xF)]])
                }
            }
            if start < bytes.count { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<bytes.count])) }
        }
        out.append(0x22)
    }

    /// Appends `s` as a JSON string literal (control characters escaped, UTF-8 kept): the byte
    /// writer's escaping, so every JSON clusterd writes is escaped by one implementation.
    public static func appendString(_ s: String, to out: inout String) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(s.utf8.count + 2)
        appendString(s, to: &bytes)
        out += String(decoding: bytes, as: UTF8.self)
    }
}
