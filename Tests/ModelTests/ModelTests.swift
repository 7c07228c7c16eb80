import Model
import Testing

/// Shared values: content hashes that ids are built from, reloadable values.
@Suite(.timeLimit(.minutes(1))) struct ModelTests {
    /// FNV-1a 64 of known inputs: the ids derived from it must not change between releases.
    @Test func contentHashIsFNV1a64() {
        #expect(ContentHash.hex("") == "cbf29ce484222325")
        #expect(ContentHash.hex("a") == "af63dc4c8601ec8c")
        #expect(ContentHash.hex("foobar") == "85944171f73967e8")
    }

    @Test func aReloadableValueIsReplacedForLaterReaders() {
        let value = Reloadable(1)
        let first = value.current
        value.replace(with: 2)
        #expect(first == 1 && value.current == 2)
    }

    @Test func stringsAreEscapedOnceForEveryJSON() {
        #expect(JSONValue.string("a\"b\\c\n\u{01}\u{7F}").jsonText == #""a\"b\\c\n\u0001\u007f""#)
    }
}
