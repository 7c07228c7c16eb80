import CNats
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// JetStream over one connection: streams, durable pull consumers, publishing with message
/// ids, and key-value buckets. Calls block until the server answers: run them on a
/// dedicated thread, not on the cooperative pool.
public final class JetStream: @unchecked Sendable {
    let js: OpaquePointer
    /// Kept so the connection outlives this context (jsCtx_Destroy must run first).
    public let connection: BusConnection

    /// Creates the JetStream context; `timeout` bounds each API call.
    public init(_ connection: BusConnection, timeout: Duration = .seconds(5)) throws(BusError) {
        var opts = jsOptions()
        try check(jsOptions_Init(&opts), "init JetStream options")
        opts.Wait = timeout.milliseconds
        var ctx: OpaquePointer?
        try check(natsConnection_JetStream(&ctx, connection.nc, &opts), "create JetStream context")
        guard let ctx else { throw BusError.closed }
        js = ctx
        self.connection = connection
    }

    deinit { jsCtx_Destroy(js) }

    /// Creates the stream with `config` when it does not exist. An existing stream keeps its
    /// settings (an operator's R3 stream stays R3); only subjects it lacks are added. Returns
    /// the settings that differ from `config` and were kept, for the caller to report.
    @discardableResult
    public func ensureStream(_ config: StreamConfig) throws(BusError) -> [String] {
        let strings = CStrings()
        var jerr = jsErrCode(0)
        var existing: UnsafeMutablePointer<jsStreamInfo>?
        if js_GetStreamInfo(&existing, js, config.name, nil, &jerr) == NATS_OK, let existing, let current = existing.pointee.Config {
            // An existing stream is the operator's: never weakened (replicas, limits, storage
            // stay); only subjects clusterd needs and the stream lacks are added.
            defer { jsStreamInfo_Destroy(existing) }
            let have = (0..<Int(current.pointee.SubjectsLen)).compactMap { current.pointee.Subjects[$0].map { String(cString: $0) } }
            var kept: [String] = []
            if current.pointee.Replicas != Int64(config.replicas) { kept.append("replicas \(current.pointee.Replicas) (configured \(config.replicas))") }
            if current.pointee.MaxAge != config.maxAge.nanoseconds { kept.append("max age \(current.pointee.MaxAge / 1_000_000_000) s (configured \(config.maxAge.components.seconds) s)") }
            if current.pointee.Duplicates != config.duplicateWindow.nanoseconds {
                kept.append("duplicate window \(current.pointee.Duplicates / 1_000_000_000) s (configured \(config.duplicateWindow.components.seconds) s)")
            }
            let missing = config.subjects.filter { !have.contains($0) }
            guard !missing.isEmpty else { return kept }
            var cfg = current.pointee
            cfg.Subjects = strings.array(have + missing)
            cfg.SubjectsLen = Int32(have.count + missing.count)
            var info: UnsafeMutablePointer<jsStreamInfo>?
            jerr = jsErrCode(0)
            let status = js_UpdateStream(&info, js, &cfg, nil, &jerr)
            if let info { jsStreamInfo_Destroy(info) }
            try check(status, "add subjects \(missing.joined(separator: ", ")) to stream \(config.name)", jsErr: jerr)
            return kept
        }
        var cfg = jsStreamConfig()
        try check(jsStreamConfig_Init(&cfg), "init stream config")
        cfg.Name = strings.copy(config.name)
        cfg.Description = strings.copy(config.description)
        cfg.Subjects = strings.array(config.subjects)
        cfg.SubjectsLen = Int32(config.subjects.count)
        cfg.Storage = config.fileStorage ? js_FileStorage : js_MemoryStorage
        cfg.Duplicates = config.duplicateWindow.nanoseconds
        cfg.MaxAge = config.maxAge.nanoseconds
        cfg.Replicas = Int64(max(1, config.replicas))
        var info: UnsafeMutablePointer<jsStreamInfo>?
        jerr = jsErrCode(0)
        let status = js_AddStream(&info, js, &cfg, nil, &jerr)
        if let info { jsStreamInfo_Destroy(info) }
        // Created meanwhile by another instance: that one's settings stand.
        if status != NATS_OK && jerr == JSStreamNameExistErr { return [] }
        try check(status, "ensure stream \(config.name)", jsErr: jerr)
        return []
    }

    /// Whether JetStream answers for this account (on a cluster: a meta leader is elected).
    public func checkAvailable() throws(BusError) {
        var info: UnsafeMutablePointer<jsAccountInfo>?
        var jerr = jsErrCode(0)
        try check(js_GetAccountInfo(&info, js, nil, &jerr), "JetStream account info", jsErr: jerr)
        jsAccountInfo_Destroy(info)
    }

    /// A stream's replicas, subjects and maximum age, as the server has them.
    public func streamSettings(_ stream: String) throws(BusError) -> (replicas: Int, subjects: [String], maxAge: Duration) {
        var info: UnsafeMutablePointer<jsStreamInfo>?
        var jerr = jsErrCode(0)
        try check(js_GetStreamInfo(&info, js, stream, nil, &jerr), "stream info \(stream)", jsErr: jerr)
        defer { jsStreamInfo_Destroy(info) }
        let c = info!.pointee.Config!.pointee
        let subjects = (0..<Int(c.SubjectsLen)).compactMap { c.Subjects[$0].map { String(cString: $0) } }
        return (Int(c.Replicas), subjects, .nanoseconds(c.MaxAge))
    }

    /// The name of the server leading `stream` on a NATS cluster (nil on a single server).
    public func streamLeader(_ stream: String) throws(BusError) -> String? {
        var info: UnsafeMutablePointer<jsStreamInfo>?
        var jerr = jsErrCode(0)
        try check(js_GetStreamInfo(&info, js, stream, nil, &jerr), "stream info \(stream)", jsErr: jerr)
        defer { jsStreamInfo_Destroy(info) }
        return info!.pointee.Cluster?.pointee.Leader.map { String(cString: $0) }
    }

    /// The message stored at `sequence` of `stream` (to compare a duplicate with the original).
    public func message(stream: String, sequence: UInt64) throws(BusError) -> BusMessage {
        var msg: OpaquePointer?
        var jerr = jsErrCode(0)
        try check(js_GetMsg(&msg, js, stream, sequence, nil, &jerr), "get message \(sequence) of \(stream)", jsErr: jerr)
        defer { natsMsg_Destroy(msg) }
        return BusMessage(copying: msg!)
    }

    /// Messages currently stored in a stream.
    public func streamMessageCount(_ stream: String) throws(BusError) -> UInt64 {
        var info: UnsafeMutablePointer<jsStreamInfo>?
        var jerr = jsErrCode(0)
        try check(js_GetStreamInfo(&info, js, stream, nil, &jerr), "stream info \(stream)", jsErr: jerr)
        defer { jsStreamInfo_Destroy(info) }
        return info!.pointee.State.Msgs
    }

    /// Creates the durable consumer if it does not exist (an existing one is kept, with its
    /// position; only its limit of unacknowledged messages is set to the configured one).
    /// An existing one that reads another subject is an error: reading it would silently
    /// take the wrong events.
    public func ensureConsumer(stream: String, _ config: ConsumerConfig) throws(BusError) {
        var existing: UnsafeMutablePointer<jsConsumerInfo>?
        var jerr = jsErrCode(0)
        if js_GetConsumerInfo(&existing, js, stream, config.durable, nil, &jerr) == NATS_OK, let existing {
            defer { jsConsumerInfo_Destroy(existing) }
            let filter = existing.pointee.Config?.pointee.FilterSubject.map { String(cString: $0) } ?? ""
            if filter != config.filterSubject {
                throw BusError.failed(operation: "consumer \(config.durable) on \(stream)", status: "mismatch",
                                      detail: "it reads \"\(filter)\", configured \"\(config.filterSubject)\": delete it "
                                        + "(nats consumer rm \(stream) \(config.durable)) to start it afresh, or name another consumer",
                                      jetStreamCode: 0)
            }
            // An older clusterd made it with another limit (one batch, before the intake
            // fetched ahead): the limit is one of the settings the server lets change.
            if let cfg = existing.pointee.Config, cfg.pointee.MaxAckPending != Int64(config.maxAckPending) {
                cfg.pointee.MaxAckPending = Int64(config.maxAckPending)
                var updated: UnsafeMutablePointer<jsConsumerInfo>?
                jerr = jsErrCode(0)
                let status = js_UpdateConsumer(&updated, js, stream, cfg, nil, &jerr)
                if let updated { jsConsumerInfo_Destroy(updated) }
                try check(status, "update consumer \(config.durable) on \(stream) to max_ack_pending \(config.maxAckPending)", jsErr: jerr)
            }
            return
        }
        let strings = CStrings()
        var cfg = jsConsumerConfig()
        try check(jsConsumerConfig_Init(&cfg), "init consumer config")
        cfg.Durable = strings.copy(config.durable)
        cfg.Description = strings.copy(config.description)
        cfg.AckPolicy = js_AckExplicit
        cfg.AckWait = config.ackWait.nanoseconds
        cfg.MaxDeliver = Int64(config.maxDeliver)
        cfg.MaxAckPending = Int64(config.maxAckPending)
        if !config.filterSubject.isEmpty { cfg.FilterSubject = strings.copy(config.filterSubject) }
        var info: UnsafeMutablePointer<jsConsumerInfo>?
        jerr = jsErrCode(0)
        let status = js_AddConsumer(&info, js, stream, &cfg, nil, &jerr)
        if let info { jsConsumerInfo_Destroy(info) }
        try check(status, "create consumer \(config.durable) on \(stream)", jsErr: jerr)
    }

    /// Messages of a durable consumer not yet delivered (`pending`, its lag) and delivered
    /// but not yet acknowledged (`ackPending`).
    public func consumerLag(stream: String, consumer: String) throws(BusError) -> (pending: UInt64, ackPending: Int64) {
        var info: UnsafeMutablePointer<jsConsumerInfo>?
        var jerr = jsErrCode(0)
        try check(js_GetConsumerInfo(&info, js, stream, consumer, nil, &jerr), "consumer info \(consumer) on \(stream)", jsErr: jerr)
        defer { jsConsumerInfo_Destroy(info) }
        return (info!.pointee.NumPending, info!.pointee.NumAckPending)
    }

    /// Binds to an existing durable pull consumer. Releasing the subscription never deletes
    /// the consumer (libnats deletes durables it created itself on unsubscribe; binding avoids that).
    public func pullSubscription(stream: String, consumer: String) throws(BusError) -> PullSubscription {
        let strings = CStrings()
        var subOpts = jsSubOptions()
        try check(jsSubOptions_Init(&subOpts), "init subscribe options")
        subOpts.Stream = strings.copy(stream)
        subOpts.Consumer = strings.copy(consumer)
        var sub: OpaquePointer?
        var jerr = jsErrCode(0)
        try check(js_PullSubscribe(&sub, js, "", consumer, nil, &subOpts, &jerr), "bind consumer \(consumer) on \(stream)", jsErr: jerr)
        return PullSubscription(sub: sub!, jetStream: self)
    }

    /// Reads `stream` from the first message stored at or after `since` (on `subject`; the
    /// stream's own subjects when empty) without a durable consumer: an ephemeral pull consumer
    /// that takes no acknowledgements and is removed when the subscription is released (or,
    /// should the reader die, by the server after a minute idle). For reading history.
    public func history(stream: String, subject: String = "", since: Date) throws(BusError) -> PullSubscription {
        let strings = CStrings()
        var subOpts = jsSubOptions()
        try check(jsSubOptions_Init(&subOpts), "init subscribe options")
        subOpts.Stream = strings.copy(stream)
        subOpts.Config.DeliverPolicy = js_DeliverByStartTime
        subOpts.Config.OptStartTime = Int64(since.timeIntervalSince1970 * 1_000_000_000)
        subOpts.Config.AckPolicy = js_AckNone
        subOpts.Config.InactiveThreshold = Duration.seconds(60).nanoseconds
        var sub: OpaquePointer?
        var jerr = jsErrCode(0)
        let filter = subject.isEmpty ? try streamSettings(stream).subjects.first ?? ">" : subject
        try check(js_PullSubscribe(&sub, js, filter, nil, nil, &subOpts, &jerr), "read \(stream) from \(since)", jsErr: jerr)
        return PullSubscription(sub: sub!, jetStream: self, ephemeral: true)
    }

    /// Publishes and waits for the stream's acknowledgement. A `messageID` makes retries of
    /// the same message idempotent within the stream's duplicate window.
    public func publish(_ message: BusMessage, messageID: String? = nil, timeout: Duration = .seconds(5)) throws(BusError) -> PublishAck {
        if messageID != nil || !message.headers.isEmpty {
            try connection.awaitFirstConnection(timeout: timeout, for: "JetStream publish on \(message.subject)")
        }
        let msg = try message.makeNatsMsg()
        defer { natsMsg_Destroy(msg) }
        let strings = CStrings()
        var opts = jsPubOptions()
        try check(jsPubOptions_Init(&opts), "init publish options")
        opts.MaxWait = timeout.milliseconds
        opts.MsgId = strings.copy(messageID)
        var ack: UnsafeMutablePointer<jsPubAck>?
        var jerr = jsErrCode(0)
        try check(js_PublishMsg(&ack, js, msg, &opts, &jerr), "JetStream publish on \(message.subject)", subject: message.subject, jsErr: jerr)
        defer { jsPubAck_Destroy(ack) }
        return PublishAck(stream: String(cString: ack!.pointee.Stream), sequence: ack!.pointee.Sequence, duplicate: ack!.pointee.Duplicate)
    }

    /// Publishes, and on failure retries up to `retries` times `interval` apart with the same
    /// message id — what a publisher must do while a broker restarts or a JetStream leader is
    /// elected (calls fail for seconds); the duplicate window makes the retries safe. Throws
    /// the last error when every attempt failed.
    public func publish(_ message: BusMessage, messageID: String, retries: Int, interval: Duration = .milliseconds(50)) throws(BusError) -> PublishAck {
        var failures = 0
        while true {
            do {
                return try publish(message, messageID: messageID)
            } catch {
                failures += 1
                if failures > retries { throw error }
                usleep(useconds_t(interval.milliseconds * 1000))
            }
        }
    }

    /// Opens a key-value bucket, creating it when `create` is set and it does not exist;
    /// `ttl` (when not zero) is how long an entry lives after its last write.
    public func keyValue(bucket: String, description: String = "", history: UInt8 = 1, replicas: Int = 1, ttl: Duration = .zero,
                         inMemory: Bool = false, create: Bool = true) throws(BusError) -> KeyValueBucket {
        var kv: OpaquePointer?
        if js_KeyValue(&kv, js, bucket) == NATS_OK, let kv { return KeyValueBucket(kv: kv, jetStream: self, name: bucket) }
        guard create else { throw BusError.notFound(operation: "open bucket \(bucket)") }
        let strings = CStrings()
        var cfg = kvConfig()
        try check(kvConfig_Init(&cfg), "init bucket config")
        cfg.Bucket = strings.copy(bucket)
        cfg.Description = strings.copy(description)
        cfg.History = history
        cfg.Replicas = Int32(max(1, replicas))
        cfg.TTL = ttl.nanoseconds  // nanoseconds, as a stream's MaxAge (libnats passes it on as is)
        cfg.StorageType = inMemory ? js_MemoryStorage : js_FileStorage
        try check(js_CreateKeyValue(&kv, js, &cfg), "create bucket \(bucket)")
        return KeyValueBucket(kv: kv!, jetStream: self, name: bucket)
    }
}

/// A pull subscription: on a bound durable consumer (fetch batches, then ack, nak or term each
/// message), or an ephemeral history reader (``JetStream/history(stream:subject:since:)``).
public final class PullSubscription: @unchecked Sendable {
    let sub: OpaquePointer
    let jetStream: JetStream
    /// A consumer libnats created for this subscription alone: removed with it.
    let ephemeral: Bool

    init(sub: OpaquePointer, jetStream: JetStream, ephemeral: Bool = false) {
        self.sub = sub
        self.jetStream = jetStream
        self.ephemeral = ephemeral
    }

    /// Fetches up to `batch` messages, waiting at most `timeout` for the first; returns an
    /// empty array when there is nothing to fetch. Blocks the calling thread.
    public func fetch(batch: Int, timeout: Duration) throws(BusError) -> [JetStreamMessage] {
        var list = natsMsgList()
        var jerr = jsErrCode(0)
        let status = natsSubscription_Fetch(&list, sub, Int32(batch), timeout.milliseconds, &jerr)
        if status == NATS_TIMEOUT { return [] }
        try check(status, "fetch", jsErr: jerr)
        var out: [JetStreamMessage] = []
        out.reserveCapacity(Int(list.Count))
        for i in 0..<Int(list.Count) {
            if let msg = list.Msgs[i] {
                out.append(JetStreamMessage(msg: msg))
                list.Msgs[i] = nil  // now owned by the JetStreamMessage
            }
        }
        natsMsgList_Destroy(&list)
        return out
    }

    deinit {
        // A bound durable consumer is kept by the server: destroy only. An ephemeral one goes
        // with the subscription (libnats deletes the consumer it created on unsubscribe).
        if ephemeral { natsSubscription_Unsubscribe(sub) }
        natsSubscription_Destroy(sub)
    }
}

/// A message fetched from a pull consumer; acknowledge it exactly once.
public final class JetStreamMessage: @unchecked Sendable {
    private let msg: OpaquePointer
    /// The message itself.
    public let message: BusMessage
    /// Stream sequence and delivery count.
    public let delivery: DeliveryInfo

    init(msg: OpaquePointer) {
        self.msg = msg
        message = BusMessage(copying: msg)
        var meta: UnsafeMutablePointer<jsMsgMetaData>?
        if natsMsg_GetMetaData(&meta, msg) == NATS_OK, let meta {
            delivery = DeliveryInfo(streamSequence: meta.pointee.Sequence.Stream, deliveries: meta.pointee.NumDelivered,
                                    pending: meta.pointee.NumPending, timestamp: meta.pointee.Timestamp)
            jsMsgMetaData_Destroy(meta)
        } else {
            delivery = DeliveryInfo(streamSequence: 0, deliveries: 1, pending: 0, timestamp: 0)
        }
    }

    deinit { natsMsg_Destroy(msg) }

    /// Acknowledges (fire and forget; flush the connection or use ``ackSync()`` to be sure).
    public func ack() throws(BusError) { try check(natsMsg_Ack(msg, nil), "ack") }

    /// Acknowledges and waits for the server to confirm.
    public func ackSync() throws(BusError) {
        var jerr = jsErrCode(0)
        try check(natsMsg_AckSync(msg, nil, &jerr), "ack", jsErr: jerr)
    }

    /// Asks for redelivery after `delay` (transient failure).
    public func nak(delay: Duration = .zero) throws(BusError) {
        try check(delay == .zero ? natsMsg_Nak(msg, nil) : natsMsg_NakWithDelay(msg, delay.milliseconds, nil), "nak")
    }

    /// Tells the server never to redeliver (the failure is recorded elsewhere).
    public func term() throws(BusError) { try check(natsMsg_Term(msg, nil), "term") }
}

/// A JetStream key-value bucket.
public final class KeyValueBucket: @unchecked Sendable {
    let kv: OpaquePointer
    let jetStream: JetStream
    /// The bucket name.
    public let name: String

    init(kv: OpaquePointer, jetStream: JetStream, name: String) {
        self.kv = kv
        self.jetStream = jetStream
        self.name = name
    }

    deinit { kvStore_Destroy(kv) }

    /// Stores `value` under `key` and returns the new revision.
    @discardableResult
    public func put(_ key: String, _ value: [UInt8]) throws(BusError) -> UInt64 {
        var revision: UInt64 = 0
        let status = value.withUnsafeBytes { kvStore_Put(&revision, kv, key, $0.baseAddress, Int32($0.count)) }
        try check(status, "put \(name)/\(key)")
        return revision
    }

    /// Stores `value` under `key` only when the key does not exist (or was deleted); the
    /// new revision, or nil when the key exists.
    public func create(_ key: String, _ value: [UInt8]) throws(BusError) -> UInt64? {
        var revision: UInt64 = 0
        let status = value.withUnsafeBytes { kvStore_Create(&revision, kv, key, $0.baseAddress, Int32($0.count)) }
        if Self.isWrongLastSequence(status) { return nil }
        try check(status, "create \(name)/\(key)")
        return revision
    }

    /// Stores `value` under `key` only when the key's latest revision is `revision` (nobody
    /// wrote it since); the new revision, or nil when someone did.
    public func update(_ key: String, _ value: [UInt8], revision: UInt64) throws(BusError) -> UInt64? {
        var new: UInt64 = 0
        let status = value.withUnsafeBytes { kvStore_Update(&new, kv, key, $0.baseAddress, Int32($0.count), revision) }
        if Self.isWrongLastSequence(status) { return nil }
        try check(status, "update \(name)/\(key)")
        return new
    }

    /// A conditional write refused because the key's revision is not the one given (libnats
    /// 3.4 says so only in its last-error text); read on the calling thread.
    private static func isWrongLastSequence(_ status: natsStatus) -> Bool {
        guard status == NATS_ERR, let last = nats_GetLastError(nil) else { return false }
        return String(cString: last).contains("wrong last sequence")
    }

    /// Deletes `key` (a delete marker: watchers see it go).
    public func delete(_ key: String) throws(BusError) {
        try check(kvStore_Delete(kv, key), "KV delete \(key)")
    }

    /// The current value of `key`, or nil when it does not exist or was deleted.
    public func get(_ key: String) throws(BusError) -> (value: [UInt8], revision: UInt64)? {
        try entry(key).map { ($0.value, $0.revision) }
    }

    /// The current entry of `key` with the server's time of its write (nil when it does not
    /// exist or was deleted).
    public func entry(_ key: String) throws(BusError) -> (value: [UInt8], revision: UInt64, created: Date)? {
        var entry: OpaquePointer?
        let status = kvStore_Get(&entry, kv, key)
        if status == NATS_NOT_FOUND { return nil }
        try check(status, "get \(name)/\(key)")
        defer { kvEntry_Destroy(entry) }
        let length = Int(kvEntry_ValueLen(entry))
        let bytes = length > 0 ? Array(UnsafeRawBufferPointer(start: kvEntry_Value(entry), count: length)) : []
        return (bytes, kvEntry_Revision(entry), Date(timeIntervalSince1970: Double(kvEntry_Created(entry)) / 1e9))
    }
}
