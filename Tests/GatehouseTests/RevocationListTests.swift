import Testing

@testable import Gatehouse

/// Revocation failing closed (PROTOCOL.md section 2), as pure decisions over successive readings of the file.
@Suite struct RevocationListTests {
    let second: UInt64 = 1_000_000_000

    func contents(_ text: String) -> RevocationList.Reading { .contents(Array(text.utf8)) }

    @Test func linesCommentsAndBlanks() {
        let (entries, invalid) = RevocationList.parse(Array("# header\ndev-1\n  jti-2  # why\n\n\r\ndev-3\r\n".utf8))
        #expect(entries == ["dev-1", "jti-2", "dev-3"] && invalid.isEmpty)
    }

    @Test func aLineThatIsNotUTF8IsSkippedAndEveryOtherLineCounts() {
        let bytes = Array("dev-1\n".utf8) + [0xFF, 0xFE, 0x0A] + Array("dev-2\n".utf8)
        let (entries, invalid) = RevocationList.parse(bytes)
        #expect(entries == ["dev-1", "dev-2"] && invalid == [2])
    }

    @Test func aFileMissingFromTheStartIsAnEmptyList() {
        var list = RevocationList()
        _ = list.apply(.missing, nowNanos: 0)
        #expect(list.entries.isEmpty && list.unreadable == nil)
    }

    @Test(arguments: [RevocationList.Reading.missing, .unreadable])
    func aFileThatCannotBeReadKeepsTheLastList(_ reading: RevocationList.Reading) {
        var list = RevocationList()
        _ = list.apply(contents("dev-1\n"), nowNanos: 0)
        let outcome = list.apply(reading, nowNanos: second)
        #expect(!outcome.changed && list.entries == ["dev-1"] && list.unreadable == reading)
        _ = list.apply(contents("dev-1\ndev-2\n"), nowNanos: 2 * second)
        #expect(list.entries == ["dev-1", "dev-2"] && list.unreadable == nil)
    }

    @Test func additionsApplyAtOnce() {
        var list = RevocationList()
        _ = list.apply(contents("dev-1\n"), nowNanos: 0)
        #expect(list.apply(contents("dev-1\ndev-2\n"), nowNanos: 1).changed)
        #expect(list.entries == ["dev-1", "dev-2"] && !list.needsRereading)
    }

    @Test func aShorterListWaitsForASecondReadingASecondLater() {
        var list = RevocationList()
        _ = list.apply(contents("dev-1\ndev-2\n"), nowNanos: 0)
        // Half-way through a rewrite: nothing is lifted, the new entry applies.
        let first = list.apply(contents("dev-3\n"), nowNanos: second)
        #expect(first.shrinkWaiting && list.entries == ["dev-1", "dev-2", "dev-3"] && list.needsRereading)
        // Too soon.
        #expect(list.apply(contents("dev-3\n"), nowNanos: second + second / 2).shrinkWaiting)
        // The rewrite finished with the old entries back: nothing was ever lifted.
        let finished = list.apply(contents("dev-1\ndev-2\ndev-3\n"), nowNanos: 2 * second)
        #expect(!finished.shrinkWaiting && list.entries == ["dev-1", "dev-2", "dev-3"] && !list.needsRereading)
    }

    @Test func aShorterListMeantAsSuchAppliesWhenItReadsTheSameASecondLater() {
        var list = RevocationList()
        _ = list.apply(contents("dev-1\ndev-2\n"), nowNanos: 0)
        _ = list.apply(contents(""), nowNanos: second)
        #expect(list.entries == ["dev-1", "dev-2"])
        let outcome = list.apply(contents(""), nowNanos: 2 * second)
        #expect(outcome.changed && list.entries.isEmpty && !list.needsRereading)
    }

    @Test func aDifferentShorterListStartsTheWaitAgain() {
        var list = RevocationList()
        _ = list.apply(contents("a\nb\nc\n"), nowNanos: 0)
        _ = list.apply(contents("a\n"), nowNanos: second)
        _ = list.apply(contents("a\nb\n"), nowNanos: 2 * second)  // still being written
        #expect(list.entries == ["a", "b", "c"])
        _ = list.apply(contents("a\nb\n"), nowNanos: 3 * second)
        #expect(list.entries == ["a", "b"])
    }
}
