import XCTest
@testable import Keyspace
@testable import RESP

/// The packed form of small sorted sets: scores survive their compact encoding, pairs keep
/// (score, member) order, and the set converts to the tree for good at Redis's limits.
final class PackedScoresTests: XCTestCase {
    func testScoresReadBackExactly() {
        let scores: [Double] = [0, 1, -1, 31, 32, -32, 63, 64, 1000, -123_456_789, 1.5, -0.25, 1e-300,
                                9_007_199_254_740_991, -9_007_199_254_740_991, 9_007_199_254_740_992,
                                -9_007_199_254_740_994, 1e300, .infinity, -.infinity, .leastNonzeroMagnitude,
                                .greatestFiniteMagnitude, Double(Int64.max), Double(Int64.min)]
        var z = SortedSetValue()
        for (i, s) in scores.enumerated() { z.add(Bytes("m\(i)"), s) }
        XCTAssertTrue(z.isPacked)
        for (i, s) in scores.enumerated() {
            XCTAssertEqual(z.score(Bytes("m\(i)"))?.bitPattern, s.bitPattern, "score \(s)")
        }
        XCTAssertEqual(z.pairs.map(\.1), scores.sorted())
    }

    func testSmallWholeScoresTakeOneByte() {
        var p = PackedScores()
        p.insert(5, Bytes("abcde"))
        // header, one byte of score, one of length, five of member
        XCTAssertEqual(p.bytes.count, 2 + 1 + 1 + 5)
        XCTAssertLessThan(p.bytes.capacity - p.bytes.count, 24)  // no spare room beyond malloc's rounding
        p.insert(2.5, Bytes("x"))
        XCTAssertEqual(p.bytes.count, 9 + 9 + 1 + 1)
        XCTAssertEqual(p.slots().map { p.member($0) }, [Bytes("x"), Bytes("abcde")])
    }

    /// Past 65,534 pairs the two-byte count says "count them" (zset-max-listpack-entries
    /// has no upper bound), and counting still comes out right both ways.
    func testCountPastTwoBytes() {
        var b = ByteBuffer([0, 0])
        for n in [0, 1, 255, 256, 65_534] {
            PackedCount.write(n, to: &b)
            XCTAssertEqual(PackedCount.read(b) { XCTFail("counted \(n)"); return -1 }, n)
        }
        for n in [65_535, 70_000] {
            PackedCount.write(n, to: &b)
            XCTAssertEqual(PackedCount.read(b) { n }, n)
        }
    }

    func testNegativeZeroIsStoredAsZeroWhilePacked() {
        var z = SortedSetValue()
        z.add(Bytes("a"), -0.0)
        XCTAssertEqual(z.score(Bytes("a"))?.sign, .plus)
        z.convertToTree()
        z.insert(Bytes("b"), -0.0)
        XCTAssertEqual(z.score(Bytes("b"))?.sign, .minus)
    }

    func testConvertsAtTheLimitsAndNotBack() {
        var z = SortedSetValue()
        for i in 0..<128 { z.add(Bytes("m\(i)"), Double(i)) }
        XCTAssertTrue(z.isPacked)
        z.add(Bytes("one more"), 0)
        XCTAssertFalse(z.isPacked)
        for i in 0..<128 { z.remove(Bytes("m\(i)")) }
        XCTAssertFalse(z.isPacked)
        XCTAssertEqual(z.pairs.map(\.0), [Bytes("one more")])

        var long = SortedSetValue()
        long.add(Bytes("short"), 1)
        long.add(Bytes([UInt8](repeating: 65, count: 65)), 2)
        XCTAssertFalse(long.isPacked)
        XCTAssertEqual(long.pairs.map(\.1), [1, 2])
        XCTAssertEqual(long.copy().pairs.map(\.1), [1, 2])
        XCTAssertNil(long.brokenTreeInvariant())
    }

    /// Redis's listpack walk for lex ranges over members of different scores: from the first
    /// member past `min`, while members stay below `max`, in (score, member) order.
    func testLexRangeOverMixedScoresWalksInOrder() {
        var z = SortedSetValue()
        for (m, s) in [("a", 0.0), ("c", 1.0), ("b", 2.0), ("d", 3.0)] { z.add(Bytes(m), s) }
        let r = LexRange(min: .inclusive(Bytes("b")), max: .inclusive(Bytes("c")))
        // redis-server 7.0 answers c b, then b c backwards, and counts 2
        XCTAssertEqual(z.range(lex: r, reverse: false).map(\.0), [Bytes("c"), Bytes("b")])
        XCTAssertEqual(z.range(lex: r, reverse: true).map(\.0), [Bytes("b"), Bytes("c")])
        XCTAssertEqual(z.count(lex: r), 2)
        // the last member below min: nothing, whatever lies between
        var y = SortedSetValue()
        for (m, s) in [("a", 3.0), ("b", 1.0), ("c", 2.0), ("d", 0.0)] { y.add(Bytes(m), s) }
        XCTAssertEqual(y.range(lex: r, reverse: false).count, 0)
    }
}
