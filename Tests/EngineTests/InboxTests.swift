import Synchronization
import XCTest
@testable import Engine

final class InboxTests: XCTestCase {
    /// Many producer threads push while the consumer drains concurrently: every message
    /// arrives exactly once and each producer's messages keep their order.
    func testManyProducersExactlyOnceInOrder() {
        struct Message: Sendable { let producer: Int; let seq: Int }
        let inbox = Inbox<Message>()
        let producers = 8, perProducer = 50_000
        let finished = Atomic<Int>(0)
        let wakeups = Atomic<Int>(0)
        var threads: [pthread_t] = []
        for p in 0..<producers {
            threads.append(spawnThread {
                for s in 0..<perProducer {
                    if inbox.push(Message(producer: p, seq: s)) { wakeups.add(1, ordering: .relaxed) }
                    if s % 1000 == 0 { sched_yield() }
                }
                finished.add(1, ordering: .releasing)
            })
        }
        var next = [Int](repeating: 0, count: producers)
        var total = 0
        while true {
            let done = finished.load(ordering: .acquiring) == producers
            for m in inbox.drain() {
                XCTAssertEqual(m.seq, next[m.producer], "producer \(m.producer) out of order")
                next[m.producer] = m.seq + 1
                total += 1
            }
            if done && inbox.isEmpty { break }
        }
        for t in threads { pthread_join(t, nil) }
        for m in inbox.drain() { next[m.producer] += 1; total += 1 }
        XCTAssertEqual(total, producers * perProducer)
        XCTAssertEqual(next, Array(repeating: perProducer, count: producers))
        XCTAssertGreaterThan(wakeups.load(ordering: .relaxed), 0)
    }

    func testPushReportsEmptyTransition() {
        let inbox = Inbox<Int>()
        XCTAssertTrue(inbox.push(1))
        XCTAssertFalse(inbox.push(2))
        XCTAssertEqual(inbox.drain(), [1, 2])
        XCTAssertTrue(inbox.push(3))
    }

    func testLockSetIsSortedAndUnique() {
        var set = ShardLockSet()
        for s in [3, 1, 2, 3, 0, 1] { set.insert(s) }
        XCTAssertEqual(set.shards, [0, 1, 2, 3])
    }

    /// Threads taking random overlapping lock sets never deadlock and never overlap
    /// inside a shard they both hold.
    func testRandomLockSetsNeitherDeadlockNorOverlap() {
        let section = LockSection(locks: (0..<6).map { _ in ShardLock() }, busy: ScriptBusy())
        let owners = (0..<6).map { _ in Owner() }
        let violations = Atomic<Int>(0)
        var threads: [pthread_t] = []
        for t in 0..<8 {
            threads.append(spawnThread {
                for _ in 0..<5_000 {
                    var set = ShardLockSet()
                    for _ in 0..<Int.random(in: 1...4) { set.insert(Int.random(in: 0..<6)) }
                    XCTAssertTrue(section.enter(set, .outlastBusy))
                    for s in set.shards where owners[s].value.exchange(t, ordering: .relaxed) != -1 { violations.add(1, ordering: .relaxed) }
                    for s in set.shards { owners[s].value.store(-1, ordering: .relaxed) }
                    section.leave(set)
                }
            })
        }
        for t in threads { pthread_join(t, nil) }
        XCTAssertEqual(violations.load(ordering: .relaxed), 0)
    }
}

final class ScriptSectionLockTests: XCTestCase {
    /// Script threads (one at a time, under the script lock) take a random lock set and
    /// then widen it by random shards in any order, by trying, restarting or escalating,
    /// while plain lock sets (some refusing on a busy script, some yielding) run
    /// alongside: nobody deadlocks, no shard is ever held by two threads, and both
    /// restarts and escalations happen.
    func testEscalatingScriptsAndLockSetsNeitherDeadlockNorOverlap() {
        let shards = 6
        let busy = ScriptBusy()
        // Each thread has its own section, as each shard has; they share the locks.
        let locks = (0..<shards).map { _ in ShardLock() }
        let owners = (0..<shards).map { _ in Owner() }
        let violations = Atomic<Int>(0)
        let restarts = Atomic<Int>(0)
        @Sendable func enter(_ set: ShardLockSet, _ me: Int) {
            for s in set.shards where owners[s].value.exchange(me, ordering: .relaxed) != -1 { violations.add(1, ordering: .relaxed) }
        }
        @Sendable func leave(_ set: ShardLockSet) {
            for s in set.shards { owners[s].value.store(-1, ordering: .relaxed) }
        }
        @Sendable func randomSet(_ n: ClosedRange<Int>) -> ShardLockSet {
            var set = ShardLockSet()
            for _ in 0..<Int.random(in: n) { set.insert(Int.random(in: 0..<shards)) }
            return set
        }
        var threads: [pthread_t] = []
        for t in 0..<3 {
            threads.append(spawnThread {
                let section = LockSection(locks: locks, busy: busy)
                for _ in 0..<1_500 {
                    XCTAssertTrue(section.enterScript(.refuseWhenBusy))
                    var held = randomSet(0...2)
                    XCTAssertTrue(section.enter(held, .refuseWhenBusy))
                    enter(held, t)
                    // Wrote already (must escalate) or not (may restart).
                    let wrote = Bool.random()
                    let missing = (0..<shards).filter { !held.contains($0) }.shuffled().prefix(Int.random(in: 1...3))
                    leave(held)
                    if section.widen(&held, by: Array(missing), mayRestart: !wrote) {
                        enter(held, t)
                        leave(held)
                    } else {
                        XCTAssertFalse(wrote)
                        restarts.add(1, ordering: .relaxed)
                    }
                    section.leave(held)
                    section.exitScript()
                }
            })
        }
        for t in 3..<9 {
            threads.append(spawnThread {
                let section = LockSection(locks: locks, busy: busy)
                for i in 0..<6_000 {
                    let set = randomSet(1...4)
                    XCTAssertTrue(section.enter(set, i % 2 == 0 ? .refuseWhenBusy : .outlastBusy))
                    enter(set, t)
                    leave(set)
                    section.leave(set)
                }
            })
        }
        for t in threads { pthread_join(t, nil) }
        XCTAssertEqual(violations.load(ordering: .relaxed), 0)
        XCTAssertGreaterThan(restarts.load(ordering: .relaxed), 0)
        XCTAssertGreaterThan(busy.escalations.load(ordering: .relaxed), 0)
        XCTAssertFalse(busy.escalating.load(ordering: .relaxed))
    }
}

final class Owner: Sendable {
    let value = Atomic<Int>(-1)
}
