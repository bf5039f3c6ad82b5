import Commands
import Keyspace
import RESP
import Synchronization
import XCTest
@testable import Engine

final class BlockingTests: XCTestCase {
    private func makeClient(_ id: Int, keys: [Bytes] = [Bytes("k")], deadline: Int64 = 0) -> BlockedClient {
        BlockedClient(connectionID: id, home: 0, db: 0, keys: keys.map { (shard: 0, key: DatabaseKey(db: 0, key: $0)) },
                      operation: .listPop(left: true, count: nil), protocolVersion: 2, deadline: deadline, discardsReply: false)
    }

    /// Every way out of `waiting` races on each client; exactly one claim wins and the
    /// state is the winner's outcome.
    func testClaimHasExactlyOneWinner() {
        let outcomes: [BlockedClient.State] = [.served, .timedOut, .unblocked, .disconnected, .completed, .served]
        let rounds = 2_000
        let clients = (0..<rounds).map { makeClient($0) }
        let wins = (0..<rounds).map { _ in Cell(0) }
        let winner = (0..<rounds).map { _ in Cell(-1) }
        let box = UncheckedBox((clients, wins, winner))
        var threads: [pthread_t] = []
        for (t, outcome) in outcomes.enumerated() {
            threads.append(spawnThread {
                let (clients, wins, winner) = box.value
                for i in 0..<rounds {
                    if i % 64 == 0 { sched_yield() }
                    if clients[i].claim(outcome) {
                        wins[i].value.add(1, ordering: .relaxed)
                        winner[i].value.store(t, ordering: .relaxed)
                    }
                }
            })
        }
        for t in threads { pthread_join(t, nil) }
        for i in 0..<rounds {
            XCTAssertEqual(wins[i].value.load(ordering: .relaxed), 1, "client \(i)")
            XCTAssertEqual(clients[i].outcome, outcomes[winner[i].value.load(ordering: .relaxed)])
            XCTAssertFalse(clients[i].isWaiting)
        }
    }

    /// Servers pop "elements" for waiters under the shard lock, claiming first; timer and
    /// unblock threads end waits at random. Every client ends once, an element is taken
    /// only by a served client, and the table drains to nothing.
    func testWaiterTableWithRacingServersTimersAndUnblocks() {
        let store = ShardStore(databases: 1)
        let table = WaiterTable(store: store)
        let lock = LockSection(locks: [ShardLock()], busy: ScriptBusy())
        let keys = (0..<4).map { Bytes("key\($0)") }
        let clients = (0..<3_000).map { i in makeClient(i, keys: [keys[i % 4], keys[(i + 1) % 4]]) }
        let elements = Atomic<Int>(0)      // handed out by servers
        let served = Atomic<Int>(0)
        let others = Atomic<Int>(0)
        let registered = Atomic<Int>(0)
        let box = UncheckedBox((store, table, lock, keys, clients))
        var threads: [pthread_t] = []
        // Registration, as `Shard.block` does under the lock.
        threads.append(spawnThread {
            let (_, table, lock, _, clients) = box.value
            for c in clients {
                _ = lock.enter(0, .outlastBusy)
                for (_, key) in c.keys { table.add(c, on: key) }
                lock.exit(0)
                registered.add(1, ordering: .releasing)
            }
        })
        // Servers: walk a key's queue oldest first, claim, then take an element.
        for s in 0..<2 {
            threads.append(spawnThread {
                let (_, table, lock, keys, _) = box.value
                var rounds = 0
                while registered.load(ordering: .acquiring) < 3_000 || rounds < 200 {
                    rounds += 1
                    let key = DatabaseKey(db: 0, key: keys[(rounds + s) % 4])
                    _ = lock.enter(0, .outlastBusy)
                    // As `serveWaiters` walks a queue: drop stale clients, claim, then pop.
                    while let c = table.waiter(on: key, at: 0) {
                        guard c.isWaiting else { table.remove(on: key, at: 0); continue }
                        guard c.claim(.served) else { continue }
                        elements.add(1, ordering: .relaxed)
                        served.add(1, ordering: .relaxed)
                        table.remove(on: key, at: 0)
                        if rounds % 3 == 0 { break }
                    }
                    lock.exit(0)
                }
            })
        }
        // Timers and CLIENT UNBLOCK on the home shard.
        for outcome in [BlockedClient.State.timedOut, .unblocked] {
            threads.append(spawnThread {
                let (_, _, _, _, clients) = box.value
                var i = outcome == .timedOut ? 0 : 1
                while i < clients.count {
                    while registered.load(ordering: .acquiring) <= i { sched_yield() }
                    if clients[i].claim(outcome) { others.add(1, ordering: .relaxed) }
                    i += 3
                }
            })
        }
        for t in threads { pthread_join(t, nil) }
        // Home shards clean up every finished client, as `finishBlocked` does.
        for c in clients {
            if c.isWaiting { XCTAssertTrue(c.claim(.disconnected)); others.add(1, ordering: .relaxed) }
            _ = lock.enter(0, .outlastBusy)
            for (_, key) in c.keys { table.remove(c, from: key) }
            lock.exit(0)
        }
        XCTAssertEqual(served.load(ordering: .relaxed) + others.load(ordering: .relaxed), clients.count)
        XCTAssertEqual(elements.load(ordering: .relaxed), served.load(ordering: .relaxed))
        XCTAssertTrue(table.isEmpty)
        XCTAssertTrue(store.databases[0].blockedKeys.isEmpty)
    }

    func testTimersFireInDeadlineOrderAndSkipFinishedClients() {
        var timers = BlockTimers()
        let deadlines: [Int64] = [50, 10, 30, 10, 70]
        let clients = deadlines.enumerated().map { makeClient($0.offset, deadline: $0.element) }
        for c in clients { timers.add(c) }
        XCTAssertEqual(timers.nextDeadline, 10)
        XCTAssertTrue(clients[2].claim(.served))
        timers.finished()
        var fired: [Int] = []
        while let c = timers.popDue(now: 60) {
            if c.claim(.timedOut) { fired.append(c.connectionID); timers.finished() }
        }
        XCTAssertEqual(fired, [1, 3, 0])
        XCTAssertEqual(timers.nextDeadline, 70)
        XCTAssertEqual(timers.live, 1)
    }

    /// Many served clients with far deadlines must not grow the heap without bound.
    func testTimerHeapDropsFinishedEntries() {
        var timers = BlockTimers()
        for i in 0..<100_000 {
            let c = makeClient(i, deadline: 1_000_000 + Int64(i))
            timers.add(c)
            XCTAssertTrue(c.claim(.served))
            timers.finished()
        }
        XCTAssertEqual(timers.live, 0)
        var remaining = 0
        while timers.popDue(now: .max) != nil { remaining += 1 }
        XCTAssertLessThan(remaining, 2_100)
    }
}

private final class Cell: Sendable {
    let value: Atomic<Int>
    init(_ v: Int) { value = Atomic(v) }
}
