import XCTest
@testable import Keyspace
@testable import RESP

/// Drives `ScoreTree` (through `SortedSetValue`, as the commands do) against a sorted array,
/// checking the tree's invariants as it grows to three levels and shrinks back to nothing.
final class ScoreTreeTests: XCTestCase {
    private struct Model {
        var pairs: [(Double, Bytes)] = []
        var scores: [Bytes: Double] = [:]

        func index(_ s: Double, _ m: Bytes) -> Int {
            var lo = 0, hi = pairs.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if ScoreTree.precedes(pairs[mid].0, pairs[mid].1, s, m) { lo = mid + 1 } else { hi = mid }
            }
            return lo
        }

        mutating func set(_ m: Bytes, _ s: Double) {
            remove(m)
            scores[m] = s
            pairs.insert((s, m), at: index(s, m))
        }

        mutating func remove(_ m: Bytes) {
            guard let s = scores.removeValue(forKey: m) else { return }
            pairs.remove(at: index(s, m))
        }
    }

    private var rng = SystemRandomNumberGenerator()

    func testRandomOperationsAgainstModel() {
        // The first two stay packed (PackedScores); the rest grow into the tree.
        for (size, distinctScores) in [(60, 5), (100, 1_000_000), (200, 5), (6000, 1_000_000), (20000, 40)] {
            var z = SortedSetValue()
            var model = Model()
            func randomMember() -> Bytes { Bytes("member:\(Int.random(in: 0..<size))") }
            func randomScore() -> Double { Double(Int.random(in: 0..<distinctScores)) / 4 }
            // Grow, churn, then shrink to empty: splits, shares and merges at every level.
            for phase in 0..<3 {
                for step in 0..<(size * 2) {
                    let m = randomMember()
                    let roll = Int.random(in: 0..<10)
                    if roll < (phase == 0 ? 1 : phase == 1 ? 4 : 8) {
                        XCTAssertEqual(z.remove(m), model.scores[m] != nil)
                        model.remove(m)
                    } else if let found = z.lookup(m) {
                        let s = randomScore()
                        z.update(m, found, to: s)
                        model.set(m, s)
                    } else {
                        let s = randomScore()
                        z.add(m, s)
                        model.set(m, s)
                    }
                    if step % 2000 == 0 {
                        XCTAssertNil(z.brokenTreeInvariant())
                        compare(z, model)
                    }
                }
                XCTAssertNil(z.brokenTreeInvariant(), "phase \(phase), size \(size)")
                compare(z, model)
            }
            XCTAssertEqual(z.isPacked, size <= 128, "size \(size)")
            for (_, m) in model.pairs { z.remove(m) }
            XCTAssertEqual(z.count, 0)
            XCTAssertEqual(z.count, 0)
            XCTAssertNil(z.brokenTreeInvariant())
            XCTAssertNil(z.first)
        }
    }

    private func compare(_ z: SortedSetValue, _ model: Model) {
        let n = model.pairs.count
        XCTAssertEqual(z.count, n)
        XCTAssertEqual(z.count, n)
        let all = z.range(ranks: 0, n - 1, reverse: false)
        XCTAssertTrue(all.map { $0.0 } == model.pairs.map { $0.1 } && all.map { $0.1 } == model.pairs.map { $0.0 })
        XCTAssertTrue(z.range(ranks: 0, n - 1, reverse: true).map { $0.0 } == model.pairs.reversed().map { $0.1 })
        guard n > 0 else { return }
        for _ in 0..<20 {
            let i = Int.random(in: 0..<n)
            XCTAssertEqual(z.rank(model.pairs[i].1), i)
            XCTAssertEqual(z.rank(model.pairs[i].1, reverse: true), n - 1 - i)
            let j = Int.random(in: i..<n)
            XCTAssertTrue(z.range(ranks: i, j, reverse: false).map { $0.0 } == model.pairs[i...j].map { $0.1 })
            // Score ranges with every bound kind, including bounds between and on scores.
            let a = model.pairs[Int.random(in: 0..<n)].0 + Double(Int.random(in: -1...1)) / 8
            let b = a + Double(Int.random(in: 0...40)) / 8
            let r = ScoreRange(min: a, max: b, minExclusive: Bool.random(), maxExclusive: Bool.random())
            let expected = model.pairs.filter { r.satisfiesMin($0.0) && r.satisfiesMax($0.0) }.map { $0.1 }
            XCTAssertTrue(z.range(scores: r, reverse: false).map { $0.0 } == expected)
            XCTAssertTrue(z.range(scores: r, reverse: true).map { $0.0 } == expected.reversed())
            XCTAssertEqual(z.count(scores: r), expected.count)
            let offset = Int.random(in: 0...3), limit = Int.random(in: -1...5)
            let window = Array(expected.dropFirst(offset).prefix(limit < 0 ? Int.max : limit))
            XCTAssertTrue(z.range(scores: r, reverse: false, offset: offset, limit: limit).map { $0.0 } == window)
        }
    }

    /// Lex ranges as ZRANGEBYLEX uses them: every member has the same score.
    func testLexRangesOnEqualScores() {
        var z = SortedSetValue()
        var members = (0..<5000).map { Bytes(String(format: "%05d", $0 * 3)) }
        for m in members.shuffled() { z.add(m, 0) }
        members.sort()
        XCTAssertNil(z.brokenTreeInvariant())
        for _ in 0..<300 {
            let lo = Int.random(in: -10...15010), hi = lo + Int.random(in: -5...600)
            let lower: LexBound = Bool.random() ? .inclusive(Bytes(String(format: "%05d", lo))) : .exclusive(Bytes(String(format: "%05d", lo)))
            let upper: LexBound = Bool.random() ? .inclusive(Bytes(String(format: "%05d", hi))) : .exclusive(Bytes(String(format: "%05d", hi)))
            let r = LexRange(min: lower, max: upper)
            let expected = members.filter { r.satisfiesMin($0) && r.satisfiesMax($0) }
            XCTAssertTrue(z.range(lex: r, reverse: false).map { $0.0 } == expected)
            XCTAssertTrue(z.range(lex: r, reverse: true).map { $0.0 } == expected.reversed())
            XCTAssertEqual(z.count(lex: r), expected.count)
        }
        let all = LexRange(min: .negativeInfinity, max: .positiveInfinity)
        XCTAssertEqual(z.count(lex: all), members.count)
        XCTAssertEqual(z.range(lex: LexRange(min: .positiveInfinity, max: .positiveInfinity), reverse: false).count, 0)
    }

    /// Popping from either end, as ZPOPMIN/ZPOPMAX and BZPOPMIN do, keeps the tree whole.
    func testPoppingBothEnds() {
        var z = SortedSetValue()
        for i in 0..<20000 { z.add(Bytes("m\(i)"), Double(i % 997)) }
        var popped = 0
        // Bounded, so that a broken delete fails the test instead of spinning on one pair.
        for _ in 0..<20000 {
            guard let (m, _) = popped % 2 == 0 ? z.first : z.last else { break }
            XCTAssertTrue(z.remove(m))
            popped += 1
            if popped % 1500 == 0 { XCTAssertNil(z.brokenTreeInvariant()) }
        }
        XCTAssertEqual(popped, 20000)
        XCTAssertEqual(z.count, 0)
        XCTAssertNil(z.brokenTreeInvariant())
    }
}
