import Keyspace
import RESP
import Synchronization
import XCTest
@testable import Engine

final class PubSubRegistryTests: XCTestCase {
    /// Shards subscribe and unsubscribe concurrently while publishers route: counts never
    /// go negative or name a shard without subscribers, and everything drains to zero.
    func testConcurrentSubscribeUnsubscribeAndRoute() {
        let shards = 4
        let registry = PubSubRegistry(shards: shards)
        let channels = (0..<8).map { Bytes("ch\($0)") }
        let badRoutes = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
        var threads: [pthread_t] = []
        for shard in 0..<shards {
            threads.append(spawnThread {
                for round in 0..<5_000 {
                    let ch = channels[(round * 7 + shard) % channels.count]
                    registry.add(.channel, ch, shard: shard)
                    if round % 3 == 0 { registry.add(.pattern, Bytes("ch*"), shard: shard) }
                    let (receivers, targets) = registry.route(ch, sharded: false)
                    // This shard subscribed `ch` and has not unsubscribed yet.
                    if receivers < 1 || !targets.contains(shard) { badRoutes.add(1, ordering: .relaxed) }
                    registry.remove(.channel, ch, shard: shard)
                    if round % 3 == 0 { registry.remove(.pattern, Bytes("ch*"), shard: shard) }
                }
            })
        }
        threads.append(spawnThread {
            while !stop.load(ordering: .relaxed) {
                for ch in channels {
                    let (receivers, targets) = registry.route(ch, sharded: false)
                    if receivers < 0 || targets.contains(where: { $0 < 0 || $0 >= shards }) { badRoutes.add(1, ordering: .relaxed) }
                }
            }
        })
        for t in threads.dropLast() { pthread_join(t, nil) }
        stop.store(true, ordering: .relaxed)
        pthread_join(threads.last!, nil)
        XCTAssertEqual(badRoutes.load(ordering: .relaxed), 0)
        XCTAssertEqual(registry.count(.channel), 0)
        XCTAssertEqual(registry.count(.pattern), 0)
        for ch in channels { XCTAssertEqual(registry.route(ch, sharded: false).receivers, 0) }
    }

    func testPatternsCountOncePerMatchAndShardChannelsAreSeparate() {
        let registry = PubSubRegistry(shards: 2)
        registry.add(.channel, Bytes("news"), shard: 0)
        registry.add(.pattern, Bytes("n*"), shard: 1)
        registry.add(.pattern, Bytes("*s"), shard: 1)
        registry.add(.shardChannel, Bytes("news"), shard: 1)
        let (receivers, targets) = registry.route(Bytes("news"), sharded: false)
        XCTAssertEqual(receivers, 3)
        XCTAssertEqual(targets, [0, 1])
        XCTAssertEqual(registry.route(Bytes("news"), sharded: true).receivers, 1)
        XCTAssertEqual(registry.subscriberCount(.channel, Bytes("news")), 1)
        XCTAssertEqual(registry.names(.channel, matching: Bytes("n*")).map { $0.string }, ["news"])
    }
}
