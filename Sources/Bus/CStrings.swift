#if canImport(Glibc)
import Glibc
#endif

/// C copies of Swift strings that must outlive a call (strings inside libnats option
/// structs are only read during the call, but Swift's automatic bridging covers direct
/// arguments only). Freed together when the arena goes away.
final class CStrings {
    private var pointers: [UnsafeMutablePointer<CChar>] = []

    func copy(_ s: String) -> UnsafePointer<CChar> {
        let p = strdup(s)!
        pointers.append(p)
        return UnsafePointer(p)
    }

    func copy(_ s: String?) -> UnsafePointer<CChar>? {
        s.map { copy($0) }
    }

    /// A C array of C strings (itself owned by the arena).
    func array(_ strings: [String]) -> UnsafeMutablePointer<UnsafePointer<CChar>?> {
        let array = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: max(strings.count, 1))
        for (i, s) in strings.enumerated() { array[i] = copy(s) }
        arrays.append(array)
        return array
    }

    private var arrays: [UnsafeMutablePointer<UnsafePointer<CChar>?>] = []

    deinit {
        pointers.forEach { free($0) }
        arrays.forEach { $0.deallocate() }
    }
}
