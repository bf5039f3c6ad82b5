import XCTest
import RESP
@testable import Keyspace

/// ByteBuffer, the packed forms' buffer: an Array of bytes in behaviour (checked against
/// one through random edits), copied on write, and one word wide.
final class ByteBufferTests: XCTestCase {
    func testRandomEditsMatchAnArray() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            var mine = ByteBuffer(), model: [UInt8] = []
            for _ in 0..<200 {
                let snapshot = mine  // a copy taken now must not see the edits that follow
                let frozen = model
                switch Int.random(in: 0..<5, using: &rng) {
                case 0:
                    let bytes = (0..<Int.random(in: 0...40)).map { _ in UInt8.random(in: 0...255) }
                    mine.append(contentsOf: bytes); model.append(contentsOf: bytes)
                case 1:
                    let b = UInt8.random(in: 0...255)
                    mine.append(b); model.append(b)
                case 2 where !model.isEmpty:
                    let lo = Int.random(in: 0..<model.count), hi = Int.random(in: lo...model.count)
                    let bytes = (0..<Int.random(in: 0...30)).map { _ in UInt8.random(in: 0...255) }
                    mine.replaceSubrange(lo..<hi, with: bytes); model.replaceSubrange(lo..<hi, with: bytes)
                case 3 where !model.isEmpty:
                    let lo = Int.random(in: 0..<model.count), hi = Int.random(in: lo...model.count)
                    mine.removeSubrange(lo..<hi); model.removeSubrange(lo..<hi)
                case 4 where !model.isEmpty:
                    let i = Int.random(in: 0..<model.count), b = UInt8.random(in: 0...255)
                    mine[i] = b; model[i] = b
                default:
                    break
                }
                XCTAssertEqual(Array(mine), model)
                XCTAssertEqual(mine.withUnsafeBytes { Array($0) }, model)
                XCTAssertEqual(Array(snapshot), frozen)
                XCTAssertGreaterThanOrEqual(mine.capacity, mine.count)
            }
        }
    }

    /// A hash or sorted set keeps one word for its storage in the entry's value, and the
    /// value stays three words: the entry's 80 bytes depend on it.
    func testStorageIsOneWord() {
        XCTAssertEqual(MemoryLayout<ByteBuffer>.size, 8)
        XCTAssertEqual(MemoryLayout<HashFields>.size, 8)
        XCTAssertEqual(MemoryLayout<Value>.size, 24)
    }

    /// Growth asks for the size needed, not double: a buffer filled by appends of a few
    /// bytes ends within one allocator size class of its contents (classes are spaced a
    /// quarter apart), at every length.
    func testGrowthIsExact() {
        var b = ByteBuffer()
        for n in 1...300 {
            b.append(contentsOf: [1, 2, 3, 4, 5, 6, 7])
            XCTAssertEqual(b.count, 7 * n)
            XCTAssertLessThanOrEqual(b.capacity, 7 * n + 7 * n / 4 + 32, "after \(n) appends")
        }
    }
}

/// Hashes and sorted sets are copy-on-write values: a copy taken before a change keeps
/// what it had, in the packed form and in the converted one alike.
final class CopyOnWriteValueTests: XCTestCase {
    func testSortedSetCopiesKeepTheirPairs() {
        for size in [5, 300] {  // packed, then past zset-max-listpack-entries
            var z = SortedSetValue()
            for i in 0..<size { z.insert(Bytes("m\(i)"), Double(i)) }
            let before = z
            z.insert(Bytes("m0"), -1)
            z.remove(Bytes("m1"))
            z.insert(Bytes("new"), 0.5)
            XCTAssertEqual(before.count, size)
            XCTAssertEqual(before.score(Bytes("m0")), 0)
            XCTAssertEqual(before.score(Bytes("m1")), 1)
            XCTAssertNil(before.score(Bytes("new")))
            XCTAssertEqual(before.rank(Bytes("m2")), 2)
            XCTAssertEqual(z.count, size)
            XCTAssertEqual(z.rank(Bytes("m0")), 0)
            XCTAssertEqual(z.score(Bytes("new")), 0.5)
            XCTAssertNil(z.brokenTreeInvariant())
            XCTAssertNil(before.brokenTreeInvariant())
        }
    }

    func testHashCopiesKeepTheirFields() {
        for size in [5, 600] {  // packed, then past hash-max-listpack-entries
            var h = HashFields()
            for i in 0..<size { h[Bytes("f\(i)")] = Bytes("v\(i)") }
            let before = h
            h[Bytes("f0")] = Bytes("changed")
            h[Bytes("f1")] = nil
            h[Bytes("added")] = Bytes("x")
            XCTAssertEqual(before.count, size)
            XCTAssertEqual(before[Bytes("f0")], Bytes("v0"))
            XCTAssertEqual(before[Bytes("f1")], Bytes("v1"))
            XCTAssertNil(before[Bytes("added")])
            XCTAssertEqual(h.count, size)
            XCTAssertEqual(h[Bytes("f0")], Bytes("changed"))
        }
    }

    /// An entry's value changed through modifyHash is changed in place, not copied: the
    /// packed buffer keeps its identity while it has room.
    func testModifyInPlaceKeepsTheBuffer() {
        let db = Database()
        let e = db.add(Bytes("h"), .hash(HashFields()))
        _ = e.modifyHash { $0[Bytes("a")] = Bytes("1") }
        let first = address(e)
        _ = e.modifyHash { $0[Bytes("a")] = Bytes("2") }  // same length: fits where it is
        XCTAssertEqual(address(e), first)
        guard case .hash(let h) = e.value else { return XCTFail("not a hash") }
        XCTAssertEqual(h[Bytes("a")], Bytes("2"))
    }

    private func address(_ e: Entry) -> UnsafeRawPointer? {
        guard case .hash(let h) = e.value else { return nil }
        guard case .packed(let b) = h.storage else { return nil }
        return b.withUnsafeBytes { $0.baseAddress }
    }
}
