import Synchronization
import XCTest
@testable import Engine

/// The shard locks kept across an input batch's commands (BatchLocks.swift).
final class KeptLocksTests: XCTestCase {
    func testLockSetAssignReusesStorage() {
        var set = ShardLockSet()
        set.assign(single: 2)
        XCTAssertEqual(set.shards, [2])
        var pair = ShardLockSet()
        pair.insert(2); pair.insert(0)
        set.assign(pair)
        XCTAssertEqual(set.shards, [0, 2])
        set.removeAll()
        XCTAssertEqual(set.count, 0)
    }

    /// A kept set grows by shards whose locks are free, and lets go of everything at the
    /// first one that is not.
    func testGrowsByFreeLocksAndReleasesAtABusyOne() {
        let locks = (0..<3).map { _ in ShardLock() }
        var kept = KeptLocks()
        XCTAssertFalse(kept.cover(0, locks), "nothing kept yet")
        locks[1].lock()
        kept.keep(single: 1)
        XCTAssertTrue(kept.cover(1, locks))
        XCTAssertTrue(kept.cover(0, locks))
        XCTAssertEqual(kept.held.shards, [0, 1])
        XCTAssertFalse(locks[0].tryLock(), "a grown lock is held")

        let other = spawnThread { locks[2].lock(); usleep(200_000); locks[2].unlock() }
        while locks[2].tryLock() { locks[2].unlock(); sched_yield() }
        XCTAssertFalse(kept.cover(2, locks))
        XCTAssertTrue(kept.isEmpty)
        XCTAssertTrue(locks[0].tryLock(), "released")
        XCTAssertTrue(locks[1].tryLock(), "released")
        locks[0].unlock(); locks[1].unlock()
        pthread_join(other, nil)
    }

    /// Without waiters a kept set serves `limit` commands; once a thread waits for one of
    /// its locks, it serves no more than `limitWhenWanted` in all and then hands over.
    func testWaiterGetsTheLockAfterAShortStretch() {
        let locks = [ShardLock()]
        var kept = KeptLocks()
        locks[0].lock()
        kept.keep(single: 0)
        var served = 1
        while kept.cover(0, locks) { served += 1 }
        XCTAssertEqual(served, KeptLocks.limit)

        locks[0].lock()
        kept.keep(single: 0)
        served = 1
        let acquired = Atomic<Bool>(false)
        let waiter = spawnThread {
            locks[0].lock()
            acquired.store(true, ordering: .releasing)
            locks[0].unlock()
        }
        while !locks[0].isWanted { sched_yield() }
        while kept.cover(0, locks) { served += 1 }
        XCTAssertEqual(served, KeptLocks.limitWhenWanted)
        pthread_join(waiter, nil)
        XCTAssertTrue(acquired.load(ordering: .acquiring))
        XCTAssertFalse(locks[0].isWanted)
    }

    /// Threads running random one- and two-shard "commands" through the protocol a shard
    /// follows (cover, else lock in order; keep or release after; release at the end of
    /// a batch), with kept sets growing by try-locks in any order: no two threads are ever
    /// inside one shard, nothing deadlocks, and both growth and reuse happen.
    func testKeptSetsNeitherDeadlockNorOverlap() {
        let shards = 4
        let locks = (0..<shards).map { _ in ShardLock() }
        let owners = (0..<shards).map { _ in Owner() }
        let violations = Atomic<Int>(0)
        let covered = Atomic<Int>(0)
        let grown = Atomic<Int>(0)
        let busy = ScriptBusy()
        var threads: [pthread_t] = []
        for t in 0..<8 {
            threads.append(spawnThread {
                var kept = KeptLocks()
                for command in 0..<20_000 {
                    var set = ShardLockSet()
                    for _ in 0..<Int.random(in: 1...2) { set.insert(Int.random(in: 0..<shards)) }
                    let before = kept.held.count
                    let isCovered = set.count == 1 ? kept.cover(set.shards[0], locks) : kept.cover(set, locks)
                    if isCovered {
                        covered.add(1, ordering: .relaxed)
                        if kept.held.count > before { grown.add(1, ordering: .relaxed) }
                    } else {
                        set.lock(locks, yieldingTo: busy)
                    }
                    for s in set.shards where owners[s].value.exchange(t, ordering: .relaxed) != -1 {
                        violations.add(1, ordering: .relaxed)
                    }
                    if command % 7 == 0 { sched_yield() }
                    for s in set.shards { owners[s].value.store(-1, ordering: .relaxed) }
                    if Int.random(in: 0..<10) == 0 {  // a command that readied keys
                        if kept.isEmpty { set.unlock(locks) } else { kept.release(locks) }
                    } else {
                        kept.keep(set)
                    }
                    if command % 16 == 15 && !kept.isEmpty { kept.release(locks) }  // end of a batch
                }
                if !kept.isEmpty { kept.release(locks) }
            })
        }
        for t in threads { pthread_join(t, nil) }
        XCTAssertEqual(violations.load(ordering: .relaxed), 0)
        XCTAssertGreaterThan(covered.load(ordering: .relaxed), 0)
        XCTAssertGreaterThan(grown.load(ordering: .relaxed), 0)
        for lock in locks {
            XCTAssertTrue(lock.tryLock(), "every lock is free at the end")
            XCTAssertFalse(lock.isWanted)
        }
    }
}
