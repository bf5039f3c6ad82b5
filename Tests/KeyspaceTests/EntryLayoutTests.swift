import XCTest
import RESP
@testable import Keyspace

final class EntryLayoutTests: XCTestCase {
    /// Entry's fields, in its order, as a struct: with the 16-byte object header it must stay
    /// 80 bytes, one of jemalloc's size classes (a snapshot's `savedEpoch` shares a word with
    /// the access bits and hash tag, an `Atomic<UInt32>`, laid out as a UInt32), or every
    /// key costs a size class more. A deadline adds one word, for keys with a TTL only.
    func testEntryFieldsLeaveNoPadding() {
        struct Mirror {
            let key: Bytes
            var value: Value
            var savedEpoch: UInt32
            let access: UInt32
            var next: Entry?
        }
        XCTAssertEqual(MemoryLayout<Mirror>.size + 16, 80)
        XCTAssertEqual(MemoryLayout<Mirror>.size + MemoryLayout<Int64>.size + 16, 88)
    }

    /// A key's first TTL replaces its entry by an ExpiringEntry that the table then finds,
    /// with the same value, access bits and snapshot number; losing the TTL keeps it.
    func testFirstDeadlineReplacesTheEntryInItsChain() {
        let db = Database()
        // Enough keys that chains hold several entries, so replacing mid-chain is covered.
        for i in 0..<2000 { db.add(Bytes("k\(i)"), .string(Bytes("v\(i)"))) }
        var replaced: [Bytes: ObjectIdentifier] = [:]
        for i in stride(from: 0, to: 2000, by: 3) {
            let key = Bytes("k\(i)")
            let before = db.table.find(key)!
            before.savedEpoch = 7
            let after = db.setExpire(before, at: 5_000 + Int64(i))
            XCTAssertFalse(before === after)
            XCTAssertTrue(after is ExpiringEntry)
            XCTAssertEqual(after.savedEpoch, 7)
            XCTAssertEqual(after.hashTag, before.hashTag)
            replaced[key] = ObjectIdentifier(after)
            // A second deadline changes the ExpiringEntry in place.
            XCTAssertTrue(db.setExpire(after, at: 6_000 + Int64(i)) === after)
        }
        XCTAssertEqual(db.count, 2000)
        XCTAssertEqual(db.volatileCount, 667)
        for i in 0..<2000 {
            let key = Bytes("k\(i)")
            guard let e = db.lookup(key, now: 0) else { return XCTFail("k\(i) lost") }
            guard case .string(let v) = e.value else { return XCTFail("k\(i) not a string") }
            XCTAssertEqual(v, Bytes("v\(i)"))
            if let id = replaced[key] {
                XCTAssertEqual(ObjectIdentifier(e), id)
                XCTAssertEqual(e.expireAt, 6_000 + Int64(i))
                db.persist(e)
                XCTAssertEqual(e.expireAt, 0)
                XCTAssertTrue(db.table.find(key) === e)
            } else {
                XCTAssertEqual(e.expireAt, 0)
            }
        }
        XCTAssertEqual(db.volatileCount, 0)
        // Active expiry finds nothing due: every deadline was removed.
        XCTAssertEqual(db.expireDue(now: 100_000, limit: 10_000), 0)
        XCTAssertEqual(db.count, 2000)
    }

    /// A key created with its deadline is an ExpiringEntry from the start, and expires.
    func testKeyCreatedWithDeadlineExpires() {
        let db = Database()
        let e = db.overwrite(nil, Bytes("t"), .string(Bytes("x")), expireAt: 10)
        XCTAssertTrue(e is ExpiringEntry)
        XCTAssertEqual(db.volatileCount, 1)
        XCTAssertNotNil(db.lookup(Bytes("t"), now: 9))
        XCTAssertEqual(db.expireDue(now: 10, limit: 10), 1)
        XCTAssertNil(db.lookup(Bytes("t"), now: 11))
        XCTAssertEqual(db.volatileCount, 0)
    }
}
