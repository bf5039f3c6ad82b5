import Foundation
import Keyspace
import RESP
import XCTest
@testable import Persistence

/// ShardSnapshot's promise: whatever writes happen between the instant and the end of
/// the walk (changes in place, overwrites, deletes, new keys, TTL changes, SWAPDB,
/// FLUSHALL), the records it produces hold every key present at the instant exactly once,
/// as it was then, and no key created after it.
final class SnapshotTests: XCTestCase {
    /// Random interleavings on one thread: every write and every walk step in a seeded
    /// random order, so a failing seed replays exactly.
    func testRecordsHoldTheInstantWhateverWritesInterleave() throws {
        for seed in 1...40 {
            var rng = SplitMix64(seed: UInt64(seed))
            let store = ShardStore(databases: 3)
            Self.populate(store, keys: 600, rng: &rng)
            let expected = plainKeyspace(store)
            let snapshot = ShardSnapshot(epoch: UInt32(seed), databases: store.databases, compress: seed % 2 == 0)
            var walked = snapshot.isWalked
            var created = 0
            while !walked {
                if Int.random(in: 0..<4, using: &rng) == 0 {
                    walked = snapshot.step(budget: Int.random(in: 1...40, using: &rng))
                } else {
                    Self.mutate(store, rng: &rng, created: &created)
                }
            }
            for db in store.databases where db.snapshot === snapshot { db.snapshot = nil }
            let got = try load(snapshot.takeRecords())
            XCTAssertEqual(got, expected, "seed \(seed)")
        }
    }

    /// The same with a real writer thread and the walk on another, each taking the lock
    /// as the server's shards and snapshot thread do (the walk's steps are the only
    /// readers here, so a mutex stands for the shard lock).
    func testRecordsHoldTheInstantWithAConcurrentWriter() throws {
        for seed in 1...8 {
            var rng = SplitMix64(seed: UInt64(seed * 977))
            let store = ShardStore(databases: 2)
            Self.populate(store, keys: 3000, rng: &rng)
            let expected = plainKeyspace(store)
            let lock = NSLock()
            let snapshot = ShardSnapshot(epoch: UInt32(100 + seed), databases: store.databases, compress: true)
            let done = DispatchSemaphore(value: 0)
            let stop = Flag()
            let shared = Unchecked(store)
            Thread {
                var writerRNG = SplitMix64(seed: UInt64(seed) &* 7919)
                var created = 0
                while !stop.isSet {
                    lock.lock()
                    Self.mutate(shared.value, rng: &writerRNG, created: &created)
                    lock.unlock()
                }
                done.signal()
            }.start()
            var walked = false
            while !walked {
                lock.lock()
                walked = snapshot.step(budget: 16)
                lock.unlock()
                usleep(UInt32.random(in: 0...30, using: &rng))
            }
            lock.lock()
            for db in store.databases where db.snapshot === snapshot { db.snapshot = nil }
            lock.unlock()
            stop.set()
            done.wait()
            let got = try load(snapshot.takeRecords())
            XCTAssertEqual(got, expected, "seed \(seed)")
        }
    }

    // MARK: the keyspace

    private static func populate(_ store: ShardStore, keys: Int, rng: inout SplitMix64) {
        for i in 0..<keys {
            let db = store.databases[Int.random(in: 0..<store.databases.count, using: &rng)]
            let key = Bytes("key:\(i)")
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: db.add(key, .string(Bytes("value-\(i)-" + String(repeating: "x", count: i % 40))))
            case 1: db.add(key, .list(ListValue([Bytes("a\(i)"), Bytes("b"), Bytes(String(i))])))
            case 2: db.add(key, .hash(HashFields([Bytes("f"): Bytes(String(i)), Bytes("g"): Bytes("h")])))
            default:
                let e = db.add(key, .set(SetValue([Bytes("m\(i)"), Bytes("n")])))
                _ = db.setExpire(e, at: 4_102_444_800_000 + Int64(i))
            }
            // Some keys are past their TTL at the instant and not yet deleted: the snapshot
            // holds them (a loader drops them), even when expiry deletes them meanwhile.
            if i % 10 == 0, let e = db.lookup(key, now: 0) { _ = db.setExpire(e, at: 900) }
        }
    }

    /// One random write, through Database as commands do it.
    private static func mutate(_ store: ShardStore, rng: inout SplitMix64, created: inout Int) {
        let db = store.databases[Int.random(in: 0..<store.databases.count, using: &rng)]
        let key = Bytes("key:\(Int.random(in: 0..<3500, using: &rng))")
        let now: Int64 = 1_000
        switch Int.random(in: 0..<100, using: &rng) {
        case 0..<30:  // a change in place
            guard let e = db.lookup(key, now: now) else { return }
            switch e.value {
            case .list(let l): l.items.append(Bytes("pushed"))
            case .hash: _ = e.modifyHash { $0[Bytes("f")] = Bytes("changed") }
            case .set(let s): s.members.insert(Bytes("added"))
            case .string: e.value = .string(Bytes("rewritten"))
            default: break
            }
        case 30..<45: db.overwrite(key, .string(Bytes("overwritten")), now: now)
        case 45..<65: _ = db.delete(key, now: now)
        case 65..<80:  // a key created after the instant
            created += 1
            let fresh = Bytes("new:\(created)")
            if db.lookup(fresh, now: now) == nil { db.add(fresh, .string(Bytes("late"))) }
        case 80..<88:
            guard let e = db.lookup(key, now: now) else { return }
            _ = db.setExpire(e, at: 5_000_000_000_000)
        case 88..<95:
            guard let e = db.lookup(key, now: now) else { return }
            db.persist(e)
        case 95..<97: _ = db.expireDue(now: now, limit: 3)  // active expiry
        case 97..<99:  // SWAPDB 0 and 1
            store.databases.swapAt(0, 1)
            store.databases[0].tradeNumbers(with: store.databases[1])
        default:  // FLUSHDB, rarely
            if Int.random(in: 0..<20, using: &rng) == 0 { db.removeAll() }
        }
    }

    private struct Record: Equatable, CustomStringConvertible {
        let value: Plain
        let expireAt: Int64
        var description: String { "\(value) @\(expireAt)" }
    }

    /// Every key by the database number it has now.
    private func plainKeyspace(_ store: ShardStore) -> [String: Record] {
        var out: [String: Record] = [:]
        for db in store.databases {
            db.table.forEach { e in out["\(db.index)/\(e.key.string)"] = Record(value: Plain(e.value), expireAt: e.expireAt) }
        }
        return out
    }

    /// The records as a file, read back by the reader; a key written twice fails.
    private func load(_ records: [(db: Int, bytes: [UInt8])]) throws -> [String: Record] {
        var file = Array("REDIS0010".utf8)
        for (db, bytes) in records {
            var select = RDBOutput(compress: false)
            select.byte(RDBOpcode.selectDB)
            select.length(db)
            file += select.bytes + bytes
        }
        file.append(RDBOpcode.eof)
        file += [UInt8](repeating: 0, count: 8)
        let target = RecordingTarget()
        _ = try file.withUnsafeBytes { try RDBReader.load($0, into: target) }
        var out: [String: Record] = [:]
        for k in target.keys {
            let name = "\(k.db)/\(k.key.string)"
            XCTAssertNil(out[name], "\(name) written twice")
            out[name] = Record(value: Plain(k.value), expireAt: k.expireAt)
        }
        return out
    }
}

/// The store crosses to the writer thread; the lock orders every use of it.
private final class Unchecked<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

private final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    func set() { lock.lock(); value = true; lock.unlock() }
}

extension SplitMix64: RandomNumberGenerator {}
