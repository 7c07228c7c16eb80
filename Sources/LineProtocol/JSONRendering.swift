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

    /// Appends `s` as a JSON string literal (control characters escaped, UTF-8 kept).
    public static func appendString(_ s: String, to out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}
