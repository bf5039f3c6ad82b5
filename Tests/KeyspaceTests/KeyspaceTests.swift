import XCTest
@testable import Keyspace
@testable import RESP

final class HashSlotTests: XCTestCase {
    /// The eight-bytes-per-step CRC against the definition, bit by bit, for every length
    /// up to 64 (odd and even) and random bytes.
    func testCRC16MatchesTheBitwiseDefinition() {
        func reference(_ bytes: [UInt8]) -> UInt16 {
            var crc: UInt16 = 0
            for b in bytes {
                crc ^= UInt16(b) << 8
                for _ in 0..<8 { crc = (crc & 0x8000) != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
            }
            return crc
        }
        var rng = SystemRandomNumberGenerator()
        for length in 0...64 {
            for _ in 0..<20 {
                let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
                XCTAssertEqual(bytes.withUnsafeBytes { HashSlot.crc16($0) }, reference(bytes), "\(bytes)")
            }
        }
    }

    func testKnownSlots() {
        XCTAssertEqual(Array("123456789".utf8).withUnsafeBytes { HashSlot.crc16($0) }, 0x31C3)
        XCTAssertEqual(HashSlot.of(Bytes("foo")), 12182)
        XCTAssertEqual(HashSlot.of(Bytes("somekey")), 11058)
    }

    func testHashTags() {
        XCTAssertEqual(HashSlot.of(Bytes("{user1000}.following")), HashSlot.of(Bytes("{user1000}.followers")))
        XCTAssertEqual(HashSlot.of(Bytes("{user1000}.following")), HashSlot.of(Bytes("user1000")))
        // An empty tag hashes the whole key.
        XCTAssertEqual(HashSlot.of(Bytes("foo{}{bar}")), Array("foo{}{bar}".utf8).withUnsafeBytes { Int(HashSlot.crc16($0)) & 16383 })
        XCTAssertEqual(HashSlot.of(Bytes("foo{{bar}}zap")), HashSlot.of(Bytes("{bar")))
    }

    /// The word-at-a-time brace search against the rule as written (the first "{", then
    /// the first "}" after it, a non-empty tag between), with braces anywhere in keys of
    /// every length up to 40, including bytes that differ from a brace in one bit.
    func testHashTagsMatchTheRuleForBracesAnywhere() {
        func reference(_ key: [UInt8]) -> Int {
            var slice = key[...]
            if let open = key.firstIndex(of: 0x7B), let close = key[(open + 1)...].firstIndex(of: 0x7D), close > open + 1 {
                slice = key[(open + 1)..<close]
            }
            return Array(slice).withUnsafeBytes { Int(HashSlot.crc16($0)) & 16383 }
        }
        var rng = SystemRandomNumberGenerator()
        let alphabet: [UInt8] = [0x7B, 0x7D, 0x7A, 0xFB, 0x3B, 0x61, 0x00, 0xFF]
        for length in 0...40 {
            for _ in 0..<50 {
                let key = (0..<length).map { _ in alphabet.randomElement(using: &rng)! }
                XCTAssertEqual(HashSlot.of(Bytes(key)), reference(key), "\(key)")
            }
        }
    }
}

final class KeyTableTests: XCTestCase {
    func testInsertFindRemove() {
        let t = KeyTable()
        for i in 0..<10_000 { t.insert(Bytes("key:\(i)"), value: .string(Bytes("v\(i)"))) }
        XCTAssertEqual(t.count, 10_000)
        for i in stride(from: 0, to: 10_000, by: 2) { XCTAssertNotNil(t.remove(Bytes("key:\(i)"))) }
        XCTAssertEqual(t.count, 5_000)
        XCTAssertNil(t.find(Bytes("key:0")))
        guard case .string(let v)? = t.find(Bytes("key:1"))?.value else { return XCTFail("missing") }
        XCTAssertEqual(v, Bytes("v1"))
    }

    /// Prefetching reads a bucket slot and hints at addresses; any hash, on any table, is
    /// fine and changes nothing.
    func testPrefetchTakesAnyHash() {
        let t = KeyTable()
        let hashes = [0, 1, -1, Int.min, Int.max, 12345]
        for h in hashes { t.prefetchBucket(h); t.prefetchChain(h) }
        for i in 0..<1000 { t.insert(Bytes("key:\(i)"), value: .string(Bytes("v"))) }
        for h in hashes + (0..<1000).map({ KeyTable.hash(Bytes("key:\($0)")) }) { t.prefetchBucket(h); t.prefetchChain(h) }
        XCTAssertEqual(t.count, 1000)
        for i in 0..<1000 { XCTAssertNotNil(t.find(Bytes("key:\(i)"))) }
    }

    /// The SCAN guarantee: keys present for the whole scan are returned at least once,
    /// even while the table grows and shrinks between calls.
    func testScanSurvivesResizes() {
        let t = KeyTable()
        for i in 0..<1000 { t.insert(Bytes("stable:\(i)"), value: .string(Bytes())) }
        var seen = Set<Bytes>()
        var cursor: UInt64 = 0
        var step = 0
        var batches: [Int] = []
        repeat {
            cursor = t.scan(cursor: cursor) { seen.insert($0.key) }
            step += 1
            // Grow the table well past its size at the start, then shrink it back.
            if step < 200 && step % 7 == 0 {
                for j in 0..<300 { t.insert(Bytes("grow:\(step):\(j)"), value: .string(Bytes())) }
                batches.append(step)
            }
            if step >= 200 && step % 7 == 0, !batches.isEmpty {
                let b = batches.removeFirst()
                for j in 0..<300 { XCTAssertNotNil(t.remove(Bytes("grow:\(b):\(j)"))) }
            }
            XCTAssertLessThan(step, 1_000_000, "scan did not terminate")
            if step >= 1_000_000 { break }
        } while cursor != 0
        for i in 0..<1000 { XCTAssertTrue(seen.contains(Bytes("stable:\(i)")), "missed stable:\(i)") }
        XCTAssertEqual(t.count, 1000)
    }
}

final class SortedSetTests: XCTestCase {
    func testAgainstReferenceModel() {
        var z = SortedSetValue()
        var model: [Bytes: Double] = [:]
        for step in 0..<5000 {
            let m = Bytes("m\(Int.random(in: 0..<300))")
            if Int.random(in: 0..<4) == 0 {
                XCTAssertEqual(z.remove(m), model.removeValue(forKey: m) != nil)
            } else {
                let s = Double(Int.random(in: -50...50))
                XCTAssertEqual(z.insert(m, s), model[m] == nil)
                model[m] = s
            }
            if step % 250 == 0 {
                let sorted = model.sorted { $0.value < $1.value || ($0.value == $1.value && $0.key < $1.key) }
                let all = z.range(ranks: 0, max(0, z.count - 1), reverse: false)
                XCTAssertEqual(all.map { $0.0 }, sorted.map { $0.key })
                for (i, e) in sorted.enumerated() { XCTAssertEqual(z.rank(e.key), i) }
                let reversed = z.range(ranks: 0, max(0, z.count - 1), reverse: true)
                XCTAssertEqual(reversed.map { $0.0 }, sorted.map { $0.key }.reversed())
                XCTAssertEqual(z.first?.0, sorted.first?.key)
                XCTAssertEqual(z.last?.0, sorted.last?.key)
                XCTAssertEqual(z.copy().range(ranks: 0, max(0, z.count - 1), reverse: false).map { $0.0 }, sorted.map { $0.key })
                let r = ScoreRange(min: -10, max: 10, minExclusive: true)
                XCTAssertEqual(z.range(scores: r, reverse: false).map { $0.0 },
                               sorted.filter { $0.value > -10 && $0.value <= 10 }.map { $0.key })
                XCTAssertEqual(z.count(scores: r), sorted.filter { $0.value > -10 && $0.value <= 10 }.count)
                XCTAssertEqual(z.range(scores: r, reverse: true).map { $0.0 },
                               sorted.filter { $0.value > -10 && $0.value <= 10 }.map { $0.key }.reversed())
            }
        }
    }

    func testLexRange() {
        var z = SortedSetValue()
        for c in ["a", "b", "c", "d", "e"] { z.insert(Bytes(c), 0) }
        let r = LexRange(min: .exclusive(Bytes("a")), max: .inclusive(Bytes("c")))
        XCTAssertEqual(z.range(lex: r, reverse: false).map { $0.0.string }, ["b", "c"])
        XCTAssertEqual(z.count(lex: LexRange(min: .negativeInfinity, max: .positiveInfinity)), 5)
    }
}

final class GlobTests: XCTestCase {
    func testPatterns() {
        XCTAssertTrue(Glob.matches(Bytes("h?llo"), Bytes("hello")))
        XCTAssertTrue(Glob.matches(Bytes("h*llo"), Bytes("heeeello")))
        XCTAssertTrue(Glob.matches(Bytes("h[ae]llo"), Bytes("hallo")))
        XCTAssertFalse(Glob.matches(Bytes("h[^e]llo"), Bytes("hello")))
        XCTAssertTrue(Glob.matches(Bytes("h[a-b]llo"), Bytes("hbllo")))
        XCTAssertTrue(Glob.matches(Bytes("h\\*"), Bytes("h*")))
        XCTAssertFalse(Glob.matches(Bytes("h\\*"), Bytes("hx")))
        XCTAssertTrue(Glob.matchesName("*max-*-entries*", "hash-max-listpack-entries"))
    }
}

final class DatabaseExpiryTests: XCTestCase {
    func testLazyAndActiveExpiry() {
        let db = Database()
        let a = db.add(Bytes("a"), .string(Bytes("1")))
        let b = db.add(Bytes("b"), .string(Bytes("2")))
        db.add(Bytes("c"), .string(Bytes("3")))
        _ = db.setExpire(a, at: 100)
        _ = db.setExpire(b, at: 200)
        XCTAssertEqual(db.volatileCount, 2)
        XCTAssertNil(db.lookup(Bytes("a"), now: 150))
        XCTAssertEqual(db.expireDue(now: 250, limit: 100), 1)
        XCTAssertEqual(db.count, 1)
        XCTAssertEqual(db.volatileCount, 0)
        XCTAssertNotNil(db.lookup(Bytes("c"), now: 10_000))
    }

    /// A reader under a shared lock must not delete: the expired key stays, reported.
    func testLookupWithoutExpiringLeavesTheKey() {
        let db = Database()
        _ = db.setExpire(db.add(Bytes("k"), .string(Bytes("v"))), at: 100)
        var expired = false
        XCTAssertNotNil(db.lookupWithoutExpiring(Bytes("k"), now: 99, expired: &expired))
        XCTAssertFalse(expired)
        XCTAssertNil(db.lookupWithoutExpiring(Bytes("k"), now: 100, expired: &expired))
        XCTAssertTrue(expired)
        XCTAssertEqual(db.count, 1)
        XCTAssertEqual(db.expiredTotal, 0)
        XCTAssertNil(db.lookup(Bytes("k"), now: 100), "the owner's lookup then deletes it")
        XCTAssertEqual(db.count, 0)
        XCTAssertEqual(db.expiredTotal, 1)
    }

    func testStaleHeapItemsAreIgnored() {
        let db = Database()
        let e = db.setExpire(db.add(Bytes("k"), .string(Bytes())), at: 100)
        db.persist(e)
        XCTAssertEqual(db.expireDue(now: 1000, limit: 10), 0)
        XCTAssertNotNil(db.lookup(Bytes("k"), now: 1000))
    }
}

final class NumbersTests: XCTestCase {
    func testDoubleParsingFollowsRedis() {
        XCTAssertEqual(Numbers.double(Bytes("1.5")), 1.5)
        XCTAssertEqual(Numbers.double(Bytes("1e3")), 1000)
        XCTAssertEqual(Numbers.double(Bytes("-inf")), -.infinity)
        XCTAssertEqual(Numbers.double(Bytes("+inf")), .infinity)
        XCTAssertEqual(Numbers.double(Bytes("inf")), .infinity)
        XCTAssertEqual(Numbers.double(Bytes("0x10")), 16)  // strtod's hexadecimal, as Redis 7
        for bad in ["", " 1", "1 ", "nan", "NaN", "1.5x", "abc", "1e400", "-1e400", "1e-400", "1\u{0}"] {
            XCTAssertNil(Numbers.double(Bytes(bad)), bad)
        }
        // Range bounds read as zslParseRange reads them: more lenient.
        XCTAssertEqual(Numbers.rangeDouble(Bytes("")), 0)
        XCTAssertEqual(Numbers.rangeDouble(Bytes(" 1")), 1)
        XCTAssertEqual(Numbers.rangeDouble(Bytes("1e400")), .infinity)
        XCTAssertEqual(Numbers.rangeDouble(Bytes("2\u{0}x")), 2)
        XCTAssertNil(Numbers.rangeDouble(Bytes("nan")))
        XCTAssertNil(Numbers.rangeDouble(Bytes("1 ")))
        XCTAssertEqual(Numbers.int(Bytes("-42")), -42)
        XCTAssertNil(Numbers.int(Bytes("4.2")))
    }
}
