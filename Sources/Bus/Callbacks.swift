import CNats
import Synchronization

// C trampolines live here, in a non-main file and outside any actor: a @convention(c)
// closure written in main.swift is MainActor-inferred and traps when libnats calls it on
// its own thread (ARCHITECTURE.md, "The bus").

/// Receives connection events on libnats threads; owned by its connection.
final class ConnectionEventSink: Sendable {
    let handler: @Sendable (ConnectionEvent) -> Void
    let counters: ConnectionCounters
    /// Set once the connection was up at least once (libnats knows the server's INFO from then on).
    let everConnected = Atomic<Bool>(false)

    init(handler: @escaping @Sendable (ConnectionEvent) -> Void, counters: ConnectionCounters) {
        self.handler = handler
        self.counters = counters
    }

    static func from(_ p: UnsafeMutableRawPointer?) -> ConnectionEventSink {
        Unmanaged<ConnectionEventSink>.fromOpaque(p!).takeUnretainedValue()
    }
}

/// Counts of connection events since the connection was created.
public final class ConnectionCounters: Sendable {
    let disconnectsStorage = Atomic<Int>(0)
    let reconnectsStorage = Atomic<Int>(0)
    let droppedStorage = Atomic<Int>(0)

    /// How often the connection was lost.
    public var disconnects: Int { disconnectsStorage.load(ordering: .relaxed) }
    /// How often it came back.
    public var reconnects: Int { reconnectsStorage.load(ordering: .relaxed) }
    /// Messages dropped by slow subscriptions (as libnats reported them).
    public var slowConsumerDrops: Int { droppedStorage.load(ordering: .relaxed) }
}

let connectedTrampoline: natsConnectionHandler = { _, closure in
    let sink = ConnectionEventSink.from(closure)
    sink.everConnected.store(true, ordering: .releasing)
    sink.handler(.connected)
}

let disconnectedTrampoline: natsConnectionHandler = { _, closure in
    let sink = ConnectionEventSink.from(closure)
    sink.counters.disconnectsStorage.add(1, ordering: .relaxed)
    sink.handler(.disconnected)
}

let reconnectedTrampoline: natsConnectionHandler = { _, closure in
    let sink = ConnectionEventSink.from(closure)
    sink.counters.reconnectsStorage.add(1, ordering: .relaxed)
    sink.handler(.reconnected)
}

let closedTrampoline: natsConnectionHandler = { _, closure in
    ConnectionEventSink.from(closure).handler(.closed)
    // The last callback of a connection: drop the reference the C side held.
    Unmanaged<ConnectionEventSink>.fromOpaque(closure!).release()
}

let errorTrampoline: natsErrHandler = { _, sub, status, closure in
    let sink = ConnectionEventSink.from(closure)
    if status == NATS_SLOW_CONSUMER, let sub {
        var dropped: Int64 = 0
        natsSubscription_GetDropped(sub, &dropped)
        sink.counters.droppedStorage.add(Int(dropped), ordering: .relaxed)
        let subject = natsSubscription_GetSubject(sub).map { String(cString: $0) } ?? "?"
        sink.handler(.slowConsumer(subject: subject, dropped: dropped))
    } else {
        sink.handler(.error(String(cString: natsStatus_GetText(status))))
    }
}

/// Holds a subscription's Swift handler for the C callback; released when libnats reports
/// the subscription complete (after its last message was dispatched).
final class MessageHandlerBox: Sendable {
    let handler: @Sendable (BusMessage) -> Void
    init(_ handler: @escaping @Sendable (BusMessage) -> Void) { self.handler = handler }
}

let messageTrampoline: natsMsgHandler = { _, _, msg, closure in
    guard let msg else { return }
    let box = Unmanaged<MessageHandlerBox>.fromOpaque(closure!).takeUnretainedValue()
    box.handler(BusMessage(copying: msg))
    natsMsg_Destroy(msg)
}

let subscriptionCompleteTrampoline: natsOnCompleteCB = { closure in
    Unmanaged<MessageHandlerBox>.fromOpaque(closure!).release()
}
