import Bus
import Foundation
import Health
import LineProtocol
import MetricBuffers
import Model

/// The metric path's decoding: a message's lines to samples by series number. A line whose
/// series bytes were seen before costs the line-protocol scan, a comparison of its series
/// bytes (or a hash) and the value — no tag strings, no key lookup (``SeriesIndex``); the
/// first line of a series takes the full decoding (``MetricLine/decode(_:defaultCluster:now:)``)
/// and admission, and every bad line gets there too, so each refusal has one implementation.
/// Owned by one thread.
public final class MetricDecoder {
    /// Why a line's new series was not admitted (dead-letter code and reason).
    public struct Refusal: Error, Sendable {
        public var code: String
        public var reason: String

        /// A refusal.
        public init(code: String, reason: String) {
            self.code = code
            self.reason = reason
        }
    }

    /// What one message gave.
    public struct Output {
        /// Series seen for the first time (by this decoder), each before its samples.
        public var new: [(Int32, MetricSample)] = []
        /// Every kept line, in order.
        public var samples: [SeriesSample] = []
        /// The kept lines of series some check watches (the checks need their values).
        public var watched: [SeriesSample] = []
        /// A series of each host that reported, one per run of lines of the same host (for
        /// the checks that only need to know a host is alive).
        public var reported: [Int32] = []
        /// Every refused line.
        public var letters: [DeadLetter] = []
        private var lastHost: Int32 = -1

        /// Takes a kept line (a method, not a captured local function: the decoding closure
        /// then needs no exclusivity check per line).
        mutating func keep(_ series: SeriesIndex.Series, _ sample: SeriesSample) {
            samples.append(sample)
            if series.watched { watched.append(sample) } else if series.host != lastHost { reported.append(series.number) }
            lastHost = series.host
        }
    }

    let defaultCluster: String
    let admit: (MetricSample) -> Result<Int32, Refusal>
    let watches: (MetricSample) -> Bool
    let version: () -> Int
    /// Hostnames by number (slow path only).
    private var hosts: [String: Int32] = [:]
    /// One decoder for every message (it keeps its tag and field storage).
    private let decoder = LineDecoder(precision: .nanoseconds)
    private var index: SeriesIndex
    private var indexedAt: Int

    /// A decoder; `admit` gives a new series its number (creating it in the metric buffers)
    /// or refuses it; `watches` says whether a check looks at a series' values; at most
    /// `indexLimit` series byte forms are remembered. When `version` changes (a reload of
    /// what admission or `watches` reads: clusters, topology, checks) every series is
    /// admitted again at its next line, so a removed cluster's series are refused from then on.
    public init(defaultCluster: String, indexLimit: Int, version: @escaping () -> Int = { 0 },
                watches: @escaping (MetricSample) -> Bool = { _ in true },
                admit: @escaping (MetricSample) -> Result<Int32, Refusal>) {
        self.defaultCluster = defaultCluster
        self.admit = admit
        self.watches = watches
        self.version = version
        index = SeriesIndex(limit: indexLimit)
        indexedAt = version()
    }

    /// Decodes `message`, received at `now` (epoch seconds).
    public func decode(_ message: BusMessage, now: Int64) -> Output {
        var out = Output()
        out.samples.reserveCapacity(message.data.count / 48)  // cc-metric-collector lines are ~60–90 bytes
        let current = version()
        // Host numbers are bounded as the index is; both start afresh together (an indexed
        // series must never share its host number with another host).
        if current != indexedAt || hosts.count >= index.limit {
            index = SeriesIndex(limit: index.limit)
            hosts = [:]
            indexedAt = current
        }
        // Worked on as a local for the message (no exclusivity check per line), then put back.
        var index = SeriesIndex(limit: 0, empty: ())
        swap(&index, &self.index)
        defer { swap(&index, &self.index) }
        message.data.withUnsafeBytes { raw in
            guard let base = raw.baseAddress?.assumingMemoryBound(to: UInt8.self), raw.count > 0 else { return }
            let end = base + raw.count
            var p = base, line = 1
            while p < end {
                let from = p
                switch MetricFastLine.scan(p, end) {
                case .line(let key, let value, let timestamp, let next):
                    p = next
                    if Self.keepIndexed(key, value: value, timestamp: timestamp, now: now, index: &index, into: &out) {
                        line += 1
                        continue
                    }
                case .other(let until): p = until
                case .rest: p = end
                }
                decodeFully(UnsafeRawBufferPointer(start: from, count: p - from), firstLine: line, message: message, now: now,
                            into: &out, index: &index)
                line += 1
            }
        }
        if out.samples.isEmpty && out.letters.isEmpty {
            // A message with no line at all (empty, blanks, comments) is answered too: never a silent drop.
            out.letters.append(MetricIntake.emptyMessage(message, now: now))
        }
        return out
    }

    /// The line-protocol decoder's reading of `lines` (from line `firstLine` of `message`):
    /// new series, lines of other forms, every error.
    private func decodeFully(_ lines: UnsafeRawBufferPointer, firstLine: Int, message: BusMessage, now: Int64,
                             into out: inout Output, index: inout SeriesIndex) {
        func letter(_ line: Int, _ column: Int, _ code: String, _ reason: String, _ raw: UnsafeBufferPointer<UInt8>) -> DeadLetter {
            DeadLetter(stage: "metrics", message: message, line: line + firstLine - 1, column: column, code: code, reason: reason,
                       raw: String(decoding: raw, as: UTF8.self), receivedAt: now)
        }
        decoder.forEachLine(in: lines) { entry in
            switch entry {
            case .error(let e, let raw): out.letters.append(letter(e.line, e.column, "syntax", e.reason.description, raw))
            case .point(let view):
                // The series bytes: from the measurement to the space before the fields.
                let end = view.fields.first?.key.start ?? view.measurement.start + view.measurement.count + 1
                let key = UnsafeRawBufferPointer(start: view.measurement.start, count: end - 1 - view.measurement.start)
                if view.fields.count == 1, let field = view.fields.first, field.key.equals("value"), let value = field.value.numericValue,
                   Self.keepIndexed(key, value: value, timestamp: view.timestamp, now: now, index: &index, into: &out) {
                    return
                }
                switch MetricLine.decode(view, defaultCluster: defaultCluster, now: now) {
                case .success(let s):
                    switch admit(s) {
                    case .success(let number):
                        let series = SeriesIndex.Series(number: number, host: hostNumber(s.hostname), watched: watches(s))
                        index.insert(key, series: series)
                        out.new.append((number, s))
                        out.keep(series, SeriesSample(series: number, time: s.time, value: s.value))
                    case .failure(let refusal): out.letters.append(letter(view.line, 1, refusal.code, refusal.reason, view.raw))
                    }
                case .failure(let located):
                    out.letters.append(letter(view.line, located.column, located.value.code, located.value.reason, view.raw))
                }
            }
        }
    }

    /// Keeps a `value=<number>` line of an indexed series whose time is not too far ahead;
    /// false leaves the line to the full decoding (a new series, or the error it makes).
    @inline(__always)
    private static func keepIndexed(_ key: UnsafeRawBufferPointer, value: Double, timestamp: Int64?, now: Int64,
                                    index: inout SeriesIndex, into out: inout Output) -> Bool {
        guard let series = index.find(key) else { return false }
        let time = timestamp.map(MetricLine.seconds(fromUnscaled:)) ?? now
        guard time <= now + MetricLine.maxSkewSeconds else { return false }
        out.keep(series, SeriesSample(series: series.number, time: time, value: value))
        return true
    }

    private func hostNumber(_ name: String) -> Int32 {
        if let n = hosts[name] { return n }
        let n = Int32(hosts.count)
        hosts[name] = n
        return n
    }
}
