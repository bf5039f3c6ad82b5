import Keyspace
import RESP
import Synchronization

/// One shard's part of a snapshot being written (the whole operation: Engine's
/// Snapshot.swift).
///
/// The snapshot is of the instant its epoch was set, under every shard lock. From then
/// on each key of the shard is written exactly once, in the state it had at that instant:
/// - the snapshot's thread walks the tables with SCAN's cursor (which visits every key
///   present for the whole walk at least once, whatever resizes happen between steps) and
///   writes each key not yet written;
/// - a write that is about to change or delete a key not yet written has it written
///   first (`preserve`, called by Database through SnapshotGuard);
/// - a key created after the instant carries the epoch from birth and is skipped.
/// "Written" is the entry's `savedEpoch` equal to this snapshot's `epoch`.
///
/// Invariants: `step` and `preserve` run under the shard's lock (shared is enough for
/// `step`, whose only write, `savedEpoch`, no shared reader reads; writers hold it
/// exclusively), so they never run at once and `cursor` needs no lock of its own. The
/// records they produce go to `records` under its mutex, which `takeRecords` empties from
/// the snapshot's thread without the shard lock.
public final class ShardSnapshot: SnapshotGuard, @unchecked Sendable {
    public let epoch: UInt32
    /// The shard's databases as they were numbered at the instant (SWAPDB later trades
    /// the objects' numbers; the file keeps the instant's).
    private let databases: [(db: Database, number: Int)]
    private let numbers: [ObjectIdentifier: Int]
    private let compress: Bool
    /// Where the walk is: which database, and SCAN's cursor in its table.
    private var position = 0
    private var cursor: UInt64 = 0
    public private(set) var isWalked = false

    /// Records not yet taken by the file, grouped by database number, in order.
    private let records = Mutex<[(db: Int, bytes: [UInt8])]>([])
    /// Keys written, for the log and for INFO.
    public private(set) var keysWritten = 0
    private var scratch: RDBOutput

    /// Call under every shard lock: from here on the databases report to this snapshot.
    public init(epoch: UInt32, databases: [Database], compress: Bool) {
        self.epoch = epoch
        self.compress = compress
        self.databases = databases.map { ($0, $0.index) }
        numbers = Dictionary(uniqueKeysWithValues: databases.map { (ObjectIdentifier($0), $0.index) })
        scratch = RDBOutput(compress: compress, capacity: 64 * 1024)
        for db in databases { db.snapshot = self }
        isWalked = databases.allSatisfy { $0.count == 0 }
    }

    /// Under the shard lock (exclusive): the databases stop reporting to this snapshot.
    public func detach() {
        for (db, _) in databases where db.snapshot === self { db.snapshot = nil }
    }

    /// Database's hook: writes `entry` as it is now, before it changes.
    public func preserve(_ entry: Entry, of db: Database) {
        guard let number = numbers[ObjectIdentifier(db)] else { return }
        entry.savedEpoch = epoch
        var out = RDBOutput(compress: compress, capacity: 64)
        if out.keyRecord(entry.key, entry.value, expireAt: entry.expireAt, access: entry.savedAccess) { keysWritten += 1 }
        append(number, out.bytes)
    }

    /// Writes up to about `budget` keys from where the walk stands; returns whether the
    /// whole shard has now been walked. Under the shard lock (shared or exclusive).
    public func step(budget: Int) -> Bool {
        var written = 0
        while !isWalked && written < budget {
            let (db, number) = databases[position]
            scratch.removeAll()
            var examined = 0, here = 0
            repeat {
                cursor = db.table.scan(cursor: cursor) { e in
                    examined += 1
                    guard e.savedEpoch != epoch else { return }
                    e.savedEpoch = epoch
                    if scratch.keyRecord(e.key, e.value, expireAt: e.expireAt, access: e.savedAccess) { here += 1 }
                }
            } while cursor != 0 && written + here < budget && examined < budget * 4
            written += here
            keysWritten += here
            if scratch.count > 0 { append(number, scratch.bytes) }
            if cursor == 0 {
                position += 1
                while position < databases.count && databases[position].db.count == 0 { position += 1 }
                isWalked = position >= databases.count
            }
            if examined >= budget * 4 { break }
        }
        return isWalked
    }

    private func append(_ db: Int, _ bytes: [UInt8]) {
        records.withLock { r in
            if let last = r.indices.last, r[last].db == db {
                r[last].bytes.append(contentsOf: bytes)
            } else {
                r.append((db, bytes))
            }
        }
    }

    /// What was written since the last call, for the file; from the snapshot's thread.
    public func takeRecords() -> [(db: Int, bytes: [UInt8])] {
        records.withLock { r in
            let taken = r
            r.removeAll()
            return taken
        }
    }
}
