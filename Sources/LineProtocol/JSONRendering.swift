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
                default:
                    let hex: [UInt8] = Array("0123456789abcdef".utf8)
                    out.append(contentsOf: [0x5C, 0x75, 0x30, 0x30, hex[Int(b >> 4)], hex[Int(b & 0xF)]])
                }
            }
            if start < bytes.count { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<bytes.count])) }
        }
        out.append(0x22)
    }

    /// Appends `s` as a JSON string literal (control characters escaped, UTF-8 kept).
    public static func appendString(_ s: String, to out: inout String) {
        out += "\""
        // Runs of bytes that need no escape are appended whole (per-scalar appends made
        // string building the top cost of the job path); escapes are all ASCII, so a run never
        // splits a multi-byte character.
        var text = s
        text.withUTF8 { bytes in
            var start = 0
            func flush(_ end: Int) {
                if start < end { out += String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self) }
            }
            for i in 0..<bytes.count {
                let escape: String
                switch bytes[i] {
                case 0x22: escape = "\\\""
                case 0x5C: escape = "\\\\"
                case 0x0A: escape = "\\n"
                case 0x0D: escape = "\\r"
                case 0x09: escape = "\\t"
                case 0x08: escape = "\\b"
                case 0x0C: escape = "\\f"
                case 0x00..<0x20, 0x7F:
                    let hex = String(bytes[i], radix: 16)
                    escape = "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                default: continue
                }
                flush(i)
                out += escape
                start = i + 1
            }
            flush(bytes.count)
        }
        out += "\""
    }
}
