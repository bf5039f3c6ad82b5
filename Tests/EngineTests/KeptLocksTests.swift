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
        XCTAssertFalse(kept.cover(0, .exclusive, locks), "nothing kept yet")
        locks[1].lock()
        kept.keep(single: 1, .exclusive)
        XCTAssertTrue(kept.cover(1, .exclusive, locks))
        XCTAssertTrue(kept.cover(0, .exclusive, locks))
        XCTAssertEqual(kept.held.shards, [0, 1])
        XCTAssertFalse(locks[0].tryLock(), "a grown lock is held")

        let other = spawnThread { locks[2].lock(); usleep(200_000); locks[2].unlock() }
        while locks[2].tryLock() { locks[2].unlock(); sched_yield() }
        XCTAssertFalse(kept.cover(2, .exclusive, locks))
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
        kept.keep(single: 0, .exclusive)
        var served = 1
        while kept.cover(0, .exclusive, locks) { served += 1 }
        XCTAssertEqual(served, KeptLocks.limit)

        locks[0].lock()
        kept.keep(single: 0, .exclusive)
        served = 1
        let acquired = Atomic<Bool>(false)
        let waiter = spawnThread {
            locks[0].lock()
            acquired.store(true, ordering: .releasing)
            locks[0].unlock()
        }
        while !locks[0].isWanted { sched_yield() }
        while kept.cover(0, .exclusive, locks) { served += 1 }
        XCTAssertEqual(served, KeptLocks.limitWhenWanted)
        pthread_join(waiter, nil)
        XCTAssertTrue(acquired.load(ordering: .acquiring))
        XCTAssertFalse(locks[0].isWanted)
    }

    /// A shared set serves readers, lets other readers in beside it, and gives way to a
    /// writer; an exclusive set serves readers too.
    func testSharedSetServesReadersOnly() {
        let locks = (0..<2).map { _ in ShardLock() }
        var kept = KeptLocks()
        XCTAssertTrue(locks[0].tryLock(.shared))
        kept.keep(single: 0, .shared)
        XCTAssertTrue(kept.cover(0, .shared, locks))
        XCTAssertTrue(kept.cover(1, .shared, locks), "grows by a read lock")
        XCTAssertEqual(kept.mode, .shared)
        let reader = Atomic<Bool>(false)
        pthread_join(spawnThread {
            if locks[0].tryLock(.shared) && locks[1].tryLock(.shared) {
                reader.store(true, ordering: .relaxed)
                locks[1].unlock(); locks[0].unlock()
            }
        }, nil)
        XCTAssertTrue(reader.load(ordering: .relaxed), "another reader gets in beside the kept set")
        XCTAssertFalse(locks[0].tryLock(), "no writer does")
        XCTAssertFalse(kept.cover(0, .exclusive, locks), "a writer is not served by a shared set")
        XCTAssertTrue(kept.isEmpty)
        XCTAssertTrue(locks[0].tryLock() && locks[1].tryLock(), "released")

        kept.keep(single: 0, .exclusive)
        XCTAssertTrue(kept.cover(0, .shared, locks))
        XCTAssertEqual(kept.mode, .exclusive, "a reader runs under the exclusive set it finds")
        kept.release(locks)
        locks[1].unlock()
    }

    /// A writer sleeping on the lock keeps new readers out, so a stream of reads cannot
    /// starve it. (With no yielding phase the writer sleeps at once: what it checks is
    /// the sleeping writer's preference.)
    func testWaitingWriterKeepsNewReadersOut() {
        let lock = ShardLock(yieldsBeforeSleeping: 0)
        XCTAssertTrue(lock.tryLock(.shared))
        let written = Atomic<Bool>(false)
        let writer = spawnThread {
            lock.lock()
            written.store(true, ordering: .releasing)
            lock.unlock()
        }
        while !lock.isWanted { sched_yield() }
        let admitted = Atomic<Bool>(false)
        pthread_join(spawnThread {
            if lock.tryLock(.shared) { admitted.store(true, ordering: .relaxed); lock.unlock() }
        }, nil)
        XCTAssertFalse(admitted.load(ordering: .relaxed), "a reader arriving after a waiting writer waits for it")
        XCTAssertFalse(written.load(ordering: .acquiring))
        lock.unlock()
        pthread_join(writer, nil)
        XCTAssertTrue(written.load(ordering: .acquiring))
    }

    /// With the default yielding phase, readers taking turns on a lock without pause
    /// still let a writer in: it yields, then sleeps, and the sleeping writer keeps new
    /// readers out.
    func testReadersCannotStarveAYieldingWriter() {
        let lock = ShardLock()
        let stop = Atomic<Bool>(false)
        let reads = Atomic<Int>(0)
        let readers = (0..<3).map { _ in
            spawnThread {
                while !stop.load(ordering: .relaxed) {
                    if lock.tryLock(.shared) {
                        reads.add(1, ordering: .relaxed)
                        lock.unlock()
                    }
                }
            }
        }
        while reads.load(ordering: .relaxed) < 1000 { sched_yield() }
        for _ in 0..<200 {
            lock.lock()  // returns only once the writer got in
            lock.unlock()
        }
        stop.store(true, ordering: .relaxed)
        for r in readers { pthread_join(r, nil) }
        XCTAssertGreaterThan(reads.load(ordering: .relaxed), 1000)
    }

    /// Threads running random one- and two-shard "commands", reads and writes, through the
    /// protocol a shard follows (cover, else lock in order in the command's mode; keep or
    /// release after; release at the end of a batch), with kept sets growing by try-locks
    /// in any order: a writer is never inside a shard together with anyone, readers do
    /// share shards, nothing deadlocks, and both growth and reuse happen.
    func testKeptSetsNeitherDeadlockNorOverlap() {
        let shards = 4
        let locks = (0..<shards).map { _ in ShardLock() }
        let occupancy = (0..<shards).map { _ in Occupancy() }
        let violations = Atomic<Int>(0)
        let sharedVisits = Atomic<Int>(0)
        let covered = Atomic<Int>(0)
        let grown = Atomic<Int>(0)
        let section = LockSection(locks: locks, busy: ScriptBusy())
        var threads: [pthread_t] = []
        for _ in 0..<8 {
            threads.append(spawnThread {
                var kept = KeptLocks()
                for command in 0..<20_000 {
                    var set = ShardLockSet()
                    for _ in 0..<Int.random(in: 1...2) { set.insert(Int.random(in: 0..<shards)) }
                    let wanted: LockMode = Bool.random() ? .shared : .exclusive
                    let before = kept.held.count
                    let isCovered = set.count == 1 ? kept.cover(set.shards[0], wanted, locks) : kept.cover(set, wanted, locks)
                    let held: LockMode
                    if isCovered {
                        covered.add(1, ordering: .relaxed)
                        if kept.held.count > before { grown.add(1, ordering: .relaxed) }
                        held = kept.mode
                    } else {
                        XCTAssertTrue(section.enter(set, .refuseWhenBusy, wanted))
                        held = wanted
                    }
                    for s in set.shards {
                        let (ok, together) = occupancy[s].enter(held)
                        if !ok { violations.add(1, ordering: .relaxed) }
                        if together { sharedVisits.add(1, ordering: .relaxed) }
                    }
                    if command % 7 == 0 { sched_yield() }
                    for s in set.shards { occupancy[s].leave(held) }
                    if Int.random(in: 0..<10) == 0 {  // a command that readied keys
                        if kept.isEmpty { set.unlock(locks) } else { kept.release(locks) }
                    } else if kept.isEmpty {
                        kept.keep(set, held)
                    }
                    if command % 16 == 15 && !kept.isEmpty { kept.release(locks) }  // end of a batch
                }
                if !kept.isEmpty { kept.release(locks) }
            })
        }
        for t in threads { pthread_join(t, nil) }
        XCTAssertEqual(violations.load(ordering: .relaxed), 0)
        XCTAssertGreaterThan(sharedVisits.load(ordering: .relaxed), 0, "readers met inside a shard")
        XCTAssertGreaterThan(covered.load(ordering: .relaxed), 0)
        XCTAssertGreaterThan(grown.load(ordering: .relaxed), 0)
        for lock in locks {
            XCTAssertTrue(lock.tryLock(), "every lock is free at the end")
            lock.unlock()
            XCTAssertFalse(lock.isWanted)
        }
    }
}

/// Who is inside one shard in the stress test. A writer raises `writers` and then finds
/// nobody else; a reader raises `readers` and then finds no writer. Both counters are
/// sequentially consistent, so of two overlapping entries at least one sees the other.
private final class Occupancy: Sendable {
    let readers = Atomic<Int>(0)
    let writers = Atomic<Int>(0)

    /// Whether the entry was allowed, and whether another reader was inside already.
    func enter(_ mode: LockMode) -> (ok: Bool, together: Bool) {
        if mode == .exclusive {
            let others = writers.add(1, ordering: .sequentiallyConsistent).oldValue
            return (others == 0 && readers.load(ordering: .sequentiallyConsistent) == 0, false)
        }
        let others = readers.add(1, ordering: .sequentiallyConsistent).oldValue
        return (writers.load(ordering: .sequentiallyConsistent) == 0, others > 0)
    }

    func leave(_ mode: LockMode) {
        if mode == .exclusive {
            writers.subtract(1, ordering: .sequentiallyConsistent)
        } else {
            readers.subtract(1, ordering: .sequentiallyConsistent)
        }
    }
}

/// The primitive's own calls, for tests that hold a lock directly rather than through a
/// LockSection (the engine never does).
extension ShardLock {
    func lock() { if !tryLock(.exclusive) { _ = wait(.exclusive) { false } } }
    func tryLock() -> Bool { tryLock(.exclusive) }
}
