/// FNV-1a 64 over bytes, as 16 hex digits: stable across runs and machines, so ids derived
/// from content (message ids, alert fingerprints) are the same on every replay.
public enum ContentHash {
    /// The hash of `bytes`.
    public static func hex<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// The hash of `text`'s UTF-8 bytes.
    public static func hex(_ text: String) -> String { hex(text.utf8) }
}
