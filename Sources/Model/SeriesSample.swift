/// A sample of a series the store has admitted, by its number: what the metric path hands
/// on once a line's series is known (no strings).
public struct SeriesSample: Sendable, Equatable {
    /// ``MetricStore``'s number of the series.
    public var series: Int32
    /// Epoch seconds.
    public var time: Int64
    public var value: Double

    /// A sample.
    public init(series: Int32, time: Int64, value: Double) {
        self.series = series
        self.time = time
        self.value = value
    }
}
