import CNats

/// A message received from or sent to the bus: an owned value, safe to keep and share.
public struct BusMessage: Sendable, Equatable {
    /// The subject it was published on.
    public var subject: String
    /// The reply subject, when the publisher expects an answer.
    public var reply: String?
    /// Headers; a key may repeat, so each holds its values in order.
    public var headers: [String: [String]]
    /// The payload.
    public var data: [UInt8]

    /// Creates a message.
    public init(subject: String, reply: String? = nil, headers: [String: [String]] = [:], data: [UInt8]) {
        self.subject = subject
        self.reply = reply
        self.headers = headers
        self.data = data
    }

    /// The first value of a header.
    public func header(_ key: String) -> String? { headers[key]?.first }

    /// The payload as UTF-8 text.
    public var text: String { String(decoding: data, as: UTF8.self) }

    /// Copies a libnats message (which stays owned by the caller).
    init(copying msg: OpaquePointer) {
        subject = String(cString: natsMsg_GetSubject(msg))
        reply = natsMsg_GetReply(msg).map { String(cString: $0) }
        let length = Int(natsMsg_GetDataLength(msg))
        if length > 0, let raw = natsMsg_GetData(msg) {
            data = Array(UnsafeRawBufferPointer(start: raw, count: length))
        } else {
            data = []
        }
        headers = [:]
        var keys: UnsafeMutablePointer<UnsafePointer<CChar>?>?
        var count: Int32 = 0
        if natsMsgHeader_Keys(msg, &keys, &count) == NATS_OK, let keys {
            for i in 0..<Int(count) {
                guard let k = keys[i] else { continue }
                var values: UnsafeMutablePointer<UnsafePointer<CChar>?>?
                var n: Int32 = 0
                if natsMsgHeader_Values(msg, k, &values, &n) == NATS_OK, let values {
                    headers[String(cString: k)] = (0..<Int(n)).compactMap { values[$0].map { String(cString: $0) } }
                    free(values)
                }
            }
            free(keys)
        }
    }

    /// Creates a libnats message for publishing; the caller destroys it.
    func makeNatsMsg() throws(BusError) -> OpaquePointer {
        var msg: OpaquePointer?
        let status = data.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { chars in
                natsMsg_Create(&msg, subject, reply, chars.baseAddress, Int32(chars.count))
            }
        }
        try check(status, "create message on \(subject)")
        guard let msg else { throw BusError.closed }
        for (key, values) in headers {
            for value in values {
                let s = natsMsgHeader_Add(msg, key, value)
                if s != NATS_OK {
                    natsMsg_Destroy(msg)
                    throw BusError.from(s, "set header \(key)")
                }
            }
        }
        return msg
    }
}
