import Foundation

/// A value handed from one thread to another that waits for it.
public final class ResultBox<T>: @unchecked Sendable {
    /// The value, once set.
    public var value: T?
    /// Signalled when ``value`` is set.
    public let done = DispatchSemaphore(value: 0)

    /// An empty box.
    public init() {}
}
