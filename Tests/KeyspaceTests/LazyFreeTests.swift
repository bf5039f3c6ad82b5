import Synchronization
import XCTest
@testable import Keyspace
@testable import RESP

/// The lazy-free thread under many handing threads: every object handed is dropped
/// exactly once, on the lazy-free thread when its reference was the last, and the
/// counters agree.
final class LazyFreeTests: XCTestCase {
    final class Tracked {
        static let dropped = Atomic<Int>(0)
        deinit { Tracked.dropped.add(1, ordering: .relaxed) }
    }

    func testManyThreadsHandingOff() {
        let lazy = LazyFree()
        let threads = 16, each = 2_000
        let before = Tracked.dropped.load(ordering: .relaxed)
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            var rng = SystemRandomNumberGenerator()
            for i in 0..<each {
                if Int.random(in: 0..<4, using: &rng) == 0 {
                    usleep(UInt32.random(in: 0..<50, using: &rng))  // vary the interleavings
                }
                lazy.hand(Tracked(), objects: i % 3 == 0 ? 2 : 1)
            }
            _ = t
        }
        let expectedObjects = threads * (each + (each + 2) / 3)
        let deadline = Date().addingTimeInterval(30)
        while lazy.pending > 0 && Date() < deadline { usleep(1000) }
        XCTAssertEqual(lazy.pending, 0)
        XCTAssertEqual(lazy.freedTotal, expectedObjects)
        XCTAssertEqual(Tracked.dropped.load(ordering: .relaxed) - before, threads * each)
    }

    /// Only values worth it are taken: a large table-backed set goes, a packed hash (one
    /// buffer) and a small set stay with their entries.
    func testOnlyLargeValuesAreTaken() {
        let large = SetValue(Set((0..<65).map { Bytes("m\($0)") }))
        XCTAssertNotNil(LazyFree.largeObject(.set(large)))
        XCTAssertNil(LazyFree.largeObject(.set(SetValue(Set((0..<64).map { Bytes("m\($0)") })))))
        var packed = HashFields()
        for i in 0..<100 { packed[Bytes("f\(i)")] = Bytes("v") }
        XCTAssertTrue(packed.isPacked)
        XCTAssertNil(LazyFree.largeObject(.hash(packed)))
        var table = HashFields()
        for i in 0..<65 { table[Bytes("f\(i)")] = Bytes(String(repeating: "v", count: 65)) }
        XCTAssertFalse(table.isPacked)
        XCTAssertNotNil(LazyFree.largeObject(.hash(table)))
        XCTAssertNil(LazyFree.largeObject(.string(Bytes(String(repeating: "x", count: 1 << 20)))))
    }

    /// As Redis frees lazily only an object nothing else references, a value still held
    /// elsewhere (RENAME moved it) is left to its holder; one held nowhere else is handed.
    func testOnlyLastReferencesAreHandedOff() {
        let lazy = LazyFree()
        let shared = SetValue(Set((0..<100).map { Bytes("m\($0)") }))
        var value = Value.set(shared)
        lazy.take(&value)
        XCTAssertEqual(lazy.pending + lazy.freedTotal, 0)
        guard case .string = value else { return XCTFail("the value was not taken out") }
        XCTAssertEqual(shared.members.count, 100)
        var alone = Value.set(SetValue(Set((0..<100).map { Bytes("m\($0)") })))
        lazy.take(&alone)
        let deadline = Date().addingTimeInterval(10)
        while lazy.freedTotal < 1 && Date() < deadline { usleep(1000) }
        XCTAssertEqual(lazy.freedTotal, 1)
    }

    /// A hash is a copy-on-write value: a copy still held elsewhere keeps its table, and
    /// only a table nothing else holds is handed to the thread.
    func testHashTableHandedOnlyWhenNoCopyHoldsIt() {
        let lazy = LazyFree()
        var fields = HashFields()
        for i in 0..<100 { fields[Bytes("f\(i)")] = Bytes(String(repeating: "v", count: 70)) }
        let kept = fields
        var value = Value.hash(fields)
        fields = HashFields()
        lazy.take(&value)
        XCTAssertEqual(lazy.pending + lazy.freedTotal, 0)
        XCTAssertEqual(kept.count, 100)
        var alone = Value.hash(kept)
        lazy.take(&alone)
        XCTAssertEqual(lazy.pending + lazy.freedTotal, 0, "`kept` still holds the table")
        var last: Value = .hash({ var h = HashFields(); for i in 0..<100 { h[Bytes("g\(i)")] = Bytes(String(repeating: "w", count: 70)) }; return h }())
        lazy.take(&last)
        let deadline = Date().addingTimeInterval(10)
        while lazy.freedTotal < 1 && Date() < deadline { usleep(1000) }
        XCTAssertEqual(lazy.freedTotal, 1)
    }
}
