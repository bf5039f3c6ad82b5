import XCTest
import RESP
@testable import Keyspace

/// The choice of victims under each maxmemory policy, on one shard's store, and the
/// access bits (LRU clock, LFU counter) the choice goes by.
final class EvictionTests: XCTestCase {
    override func tearDown() {
        KeyAccess.countsFrequency.store(false, ordering: .relaxed)
        KeyAccess.logFactor.store(10, ordering: .relaxed)
        KeyAccess.seconds.store(UInt32(time(nil)), ordering: .relaxed)
    }

    private func store(keys: Int, ttlEvery: Int = 0) -> ShardStore {
        let s = ShardStore(databases: 2)
        let db = s.databases[0]
        for i in 0..<keys {
            let e = db.add(Bytes("k\(i)"), .string(Bytes("v")))
            if ttlEvery > 0 && i % ttlEvery == 0 { _ = db.setExpire(e, at: 1_000_000 + Int64(i)) }
        }
        return s
    }

    private func evictAll(_ s: ShardStore, _ policy: EvictionPolicy) -> [String] {
        var order: [String] = []
        while s.bestEvictionScore(policy, samples: 5) != nil,
              let (db, e) = s.takeEvictionVictim(policy, samples: 5, minimum: 0) {
            order.append(e.key.string)
            db.evict(e)
        }
        return order
    }

    func testPoolKeepsTheBestSixteenAndGivesTheBestFirst() {
        var pool = EvictionPool()
        for score in [5, 1, 9, 3, 7] + Array(20..<40) { pool.offer(score: UInt64(score), db: 0, key: Bytes("\(score)")) }
        var taken: [UInt64] = []
        while let c = pool.popBest() { taken.append(c.score) }
        XCTAssertEqual(taken, (24..<40).reversed().map { UInt64($0) })
    }

    func testLRUTakesIdleKeysBeforeRecentOnes() {
        let clock = KeyAccess.seconds.load(ordering: .relaxed)
        let s = store(keys: 1000)
        KeyAccess.seconds.store(clock + 100, ordering: .relaxed)
        let recent = (0..<100).map { "k\($0)" }
        for k in recent { s.databases[0].lookup(Bytes(k), now: 0)?.touch() }
        let order = evictAll(s, .allKeysLRU)
        XCTAssertEqual(order.count, 1000)
        // Sampled, so only approximately in order: while idle keys are plenty, none of the
        // recent ones is taken (the pool keeps the idle candidates of earlier samples).
        XCTAssertTrue(Set(order.prefix(800)).isDisjoint(with: recent))
        XCTAssertEqual(s.databases[0].evictedTotal, 1000)
    }

    func testVolatilePoliciesTakeOnlyKeysWithATTL() {
        for policy in [EvictionPolicy.volatileLRU, .volatileLFU, .volatileRandom, .volatileTTL] {
            let s = store(keys: 500, ttlEvery: 5)
            let order = evictAll(s, policy)
            XCTAssertEqual(order.count, 100, "\(policy)")
            XCTAssertEqual(s.databases[0].count, 400)
            XCTAssertEqual(s.databases[0].volatileCount, 0)
            XCTAssertNil(s.bestEvictionScore(policy, samples: 5))
        }
    }

    func testVolatileTTLTakesTheSoonestDeadlineFirst() {
        let s = store(keys: 300, ttlEvery: 3)
        let order = evictAll(s, .volatileTTL)
        XCTAssertEqual(order, stride(from: 0, to: 300, by: 3).map { "k\($0)" })
    }

    func testRandomPoliciesEmptyEveryDatabase() {
        let s = store(keys: 200)
        for i in 0..<50 { s.databases[1].add(Bytes("other\(i)"), .string(Bytes("v"))) }
        XCTAssertEqual(evictAll(s, .allKeysRandom).count, 250)
        XCTAssertNil(s.bestEvictionScore(.allKeysRandom, samples: 5))
        XCTAssertNil(s.bestEvictionScore(.noEviction, samples: 5))
    }

    func testLFUCountsAccessesLogarithmicallyAndDecays() {
        KeyAccess.countsFrequency.store(true, ordering: .relaxed)
        KeyAccess.logFactor.store(0, ordering: .relaxed)
        let db = Database()
        let e = db.add(Bytes("hot"), .string(Bytes("v")))
        XCTAssertEqual(e.frequency, 5)
        for _ in 0..<300 { e.touch() }
        XCTAssertEqual(e.frequency, 255)  // saturates
        KeyAccess.logFactor.store(10, ordering: .relaxed)
        let f = db.add(Bytes("warm"), .string(Bytes("v")))
        for _ in 0..<1000 { f.touch() }
        XCTAssertTrue((8...30).contains(f.frequency), "\(f.frequency)")  // about log(1000)
        // Ten minutes without access at lfu-decay-time 1: ten less.
        let before = f.frequency
        KeyAccess.seconds.store(KeyAccess.seconds.load(ordering: .relaxed) + 600, ordering: .relaxed)
        XCTAssertEqual(f.frequency, before - 10)
    }

    func testIdleTimeFollowsTheClockAndSurvivesItsWrap() {
        let db = Database()
        KeyAccess.seconds.store(UInt32(0xFF_FFF0), ordering: .relaxed)
        let e = db.add(Bytes("a"), .string(Bytes("v")))
        KeyAccess.seconds.store(UInt32(0x100_0010), ordering: .relaxed)  // past the 24-bit wrap
        XCTAssertEqual(e.idleSeconds, 0x1F)
        e.touch()
        XCTAssertEqual(e.idleSeconds, 0)
        e.restoreAccess(idleSeconds: 500)
        XCTAssertEqual(e.idleSeconds, 500)
    }

    func testSamplesFindKeysAfterTheTableShrinks() {
        let s = store(keys: 5000)
        let db = s.databases[0]
        for i in 0..<4990 { db.delete(Bytes("k\(i)"), now: 0) }
        var seen = Set<String>()
        for _ in 0..<200 { db.sample(5, volatileOnly: false) { seen.insert($0.key.string) } }
        XCTAssertEqual(seen, Set((4990..<5000).map { "k\($0)" }))
        for i in 4990..<5000 { XCTAssertNotNil(db.table.find(Bytes("k\(i)"))) }
    }
}
