import Keyspace
import Persistence
import RESP
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// Snapshots: the whole keyspace at one instant, written to an RDB file while the server
// keeps serving.
//
// Redis forks and lets the child write what copy-on-write kept of the instant. Berth
// does not fork (a threaded process forks badly, and copy-on-write can double memory under
// writes). Instead (Dragonfly's versioned snapshot is the published model):
//   1. `begin`, under every shard lock for an instant: a new epoch number, and a
//      ShardSnapshot attached to each shard's databases. That instant is the snapshot's.
//   2. `write`, on the snapshot's own thread (BGSAVE) or the asking one (SAVE): each
//      shard's tables are walked in bounded steps, one shard lock held shared per step,
//      and every key not yet written is written; meanwhile a command that is about to
//      change or delete a key not yet written has it written first, as it was
//      (ShardSnapshot.preserve, called by Database). Keys created after the instant are
//      born written. So each key is written exactly once, as it was at the instant.
//   3. `end`: each shard's databases are detached under that shard's lock, the file is
//      finished, made durable and renamed into place (RDBFileWriter).
// The extra memory is what the preserved keys' records take until the file has them,
// not a copy of the dataset; the extra latency is a command's own keys' serialization
// the first time it touches them during the snapshot.

/// One snapshot being written. Threads: `begin` on the thread that asked; `write` and
/// `end` on one thread, the snapshot's (BGSAVE) or the asking one's (SAVE).
final class Snapshot: @unchecked Sendable {
    let epoch: UInt32
    let parts: [ShardSnapshot]
    /// FUNCTION libraries at the instant.
    let functionLibraries: [Bytes]
    /// JavaScript libraries at the instant, as TFUNCTION LOAD arguments. The RDB format
    /// has no place for them: they go in auxiliary fields (`javaScriptAux`), which Redis
    /// and Valkey skip as unknown.
    let javaScriptLibraries: [[Bytes]]
    static let javaScriptAux = "berth-tfunction"
    /// Module data types' global data (aux_save) at the instant: written before the keys
    /// and after them.
    let moduleAux: (before: [[UInt8]], after: [[UInt8]])
    /// Changes made to the keyspace up to the instant (the shards' dirty counters).
    let dirtyAtStart: Int
    /// Keys in the keyspace at the instant (INFO current_save_keys_total).
    let keysAtStart: Int
    /// Each database's key and TTL counts at the instant (the file's RESIZEDB hints).
    let databaseSizes: [Int: (keys: Int, expires: Int)]
    let startedAt = ShardStore.nowMilliseconds()
    private unowned let server: Server

    /// Set by FLUSHALL (as Redis kills its saving child): the walk stops, the file is
    /// abandoned, and that is not a failure.
    let cancelled = Atomic<Bool>(false)
    struct Cancelled: Error {}
    static let cancelledMessage = "cancelled: the data set was flushed"

    private static let lastEpoch = Mutex<UInt32>(0)
    /// Keys written per lock-holding step: small enough that a step is tens of
    /// microseconds, large enough that taking the lock is not the cost.
    static let stepBudget = 256

    private init(server: Server, epoch: UInt32, parts: [ShardSnapshot], functions: [Bytes], dirty: Int, keys: Int) {
        keysAtStart = keys
        var sizes: [Int: (keys: Int, expires: Int)] = [:]
        for store in server.stores {
            for db in store.databases where db.count > 0 {
                let old = sizes[db.index] ?? (0, 0)
                sizes[db.index] = (old.keys + db.count, old.expires + db.volatileCount)
            }
        }
        databaseSizes = sizes
        javaScriptLibraries = server.extensions.javascript.librariesAsLoadArguments
        moduleAux = server.extensions.modules.auxRecords()
        self.server = server
        self.epoch = epoch
        self.parts = parts
        functionLibraries = functions
        dirtyAtStart = dirty
    }

    /// Takes every shard lock for an instant and starts a snapshot of that instant; nil
    /// when `policy` gave up (a busy script).
    /// `atInstant` runs under those locks too: what must happen at exactly the snapshot's
    /// instant (the append-only file's switch to a new incremental file).
    static func begin(_ server: Server, section: LockSection, policy: LockWaitPolicy, atInstant: () -> Void = {}) -> Snapshot? {
        guard section.enter(section.everyShard, policy) else { return nil }
        defer { section.exit(section.everyShard) }
        let epoch = lastEpoch.withLock { e -> UInt32 in
            e = e == UInt32.max ? 1 : e + 1
            return e
        }
        atInstant()
        let compress = server.config.get("rdbcompression") == "yes"
        let parts = server.stores.map { ShardSnapshot(epoch: epoch, databases: $0.databases, compress: compress) }
        let dirty = server.shards.reduce(0) { $0 + $1.context.dirty }
        return Snapshot(server: server, epoch: epoch, parts: parts,
                        functions: server.extensions.scripting.functionLibrarySources, dirty: dirty,
                        keys: server.stores.reduce(0) { n, store in store.databases.reduce(n) { $0 + $1.count } })
    }

    /// Writes every shard's keys into `file` and finishes it. Throws what the file could
    /// not be written with; the databases are detached either way.
    func write(to file: RDBFileWriter, aux: [(String, Bytes)], section: LockSection) throws {
        defer { end(section) }
        file.sizeHints = databaseSizes
        try file.header(aux: aux + javaScriptLibraries.map { (Snapshot.javaScriptAux, Snapshot.encode($0)) })
        for source in functionLibraries { try file.functionLibrary(source) }
        for record in moduleAux.before { try file.raw(record) }
        var remaining = Array(parts.indices)
        while !remaining.isEmpty {
            if cancelled.load(ordering: .relaxed) { throw Cancelled() }
            for s in remaining {
                // The snapshot is background work: a shard thread waiting for this lock
                // goes first (measured: without this, on a core shared with the shards,
                // writes nearly stopped while a BGSAVE ran).
                var yields = 0
                while section.locks[s].isWanted && yields < 1000 {
                    sched_yield()
                    yields += 1
                }
                _ = section.enter(s, .outlastBusy, .shared)
                let walked = parts[s].step(budget: Snapshot.stepBudget)
                section.exit(s)
                try drain(parts[s], into: file)
                if walked { remaining.removeAll { $0 == s } }
            }
        }
        // Writes that preserved keys after their shard's walk ended (none can: every key
        // is written by then) leave nothing behind; drained once more all the same.
        for p in parts { try drain(p, into: file) }
        for record in moduleAux.after { try file.raw(record) }
        try file.commit()
    }

    private func drain(_ part: ShardSnapshot, into file: RDBFileWriter) throws {
        for (db, bytes) in part.takeRecords() { try file.records(db: db, bytes) }
    }

    /// Detaches every shard's databases, one shard lock at a time.
    private func end(_ section: LockSection) {
        for (s, part) in parts.enumerated() {
            _ = section.enter(s, .outlastBusy)
            part.detach()
            section.exit(s)
        }
    }

    /// Arguments as one RESP array, an auxiliary field's value (read by AOFReplay's reader).
    static func encode(_ args: [Bytes]) -> Bytes {
        let out = IOBuffer(capacity: 256)
        ReplyWriter(buffer: out, protocolVersion: 2, countsErrors: false).bulkArray(args)
        return Bytes(out.readableArray)
    }

    var keysWritten: Int { parts.reduce(0) { $0 + $1.keysWritten } }
}
