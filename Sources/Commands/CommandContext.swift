import Keyspace
import Persistence
import RESP

/// Routes a key to the shard that owns its hash slot. Slots are split into contiguous
/// ranges, one per shard, so hash-tagged keys always meet on one shard.
public struct SlotMap: Sendable {
    public let shardCount: Int
    private let owner: [UInt16]

    public init(shards: Int) {
        shardCount = shards
        owner = (0..<HashSlot.count).map { UInt16($0 * shards / HashSlot.count) }
    }

    @inline(__always) public func shard(ofSlot slot: Int) -> Int { Int(owner[slot]) }
    /// With one shard every key is local, so the CRC16 is skipped altogether.
    @inline(__always) public func shard(of key: Bytes) -> Int {
        shardCount == 1 ? 0 : Int(owner[HashSlot.of(key)])
    }
}

/// Everything a data command sees while it runs: its arguments, the reply being written,
/// the client's database, and the shard stores whose locks the engine holds for it.
/// One context per shard thread is reused for every command that thread runs.
public final class CommandContext: @unchecked Sendable {
    public var args: [Bytes] = []
    public var reply: ReplyWriter
    public var dbIndex = 0
    /// Milliseconds; fixed for the whole command (and a whole EXEC), as Redis does.
    public var now: Int64 = 0
    /// Incremented for every change to the keyspace (INFO's rdb_changes_since_last_save).
    public var dirty = 0
    public var keyspaceHits = 0
    public var keyspaceMisses = 0
    /// True inside EXEC: blocking commands then behave as their non-blocking forms.
    public var inTransaction = false
    /// Running for a Lua script or function (SORT orders a set's members there, as Redis).
    public var inScript = false
    public var maxBulkLength = 512 * 1024 * 1024
    /// Filed by a blocking command that found nothing to serve it; the engine takes it.
    public var blockRequest: BlockRequest? = nil
    /// Enabled keyspace-notification classes, set by the engine for each command.
    public var notifyFlags = NotifyFlags()
    /// Keyspace events recorded by the command, published by the engine afterwards.
    public var events: [KeyspaceEvent] = []
    /// Key arguments a write command left unchanged (SMOVE's destination that already had
    /// the member): their WATCHers are not touched. Cleared by the engine after each command.
    public var unchangedKeys: [Bytes] = []

    public let stores: [ShardStore]
    public let slots: SlotMap
    /// Set by the engine while a single-key command runs: the shard of that key, so the
    /// command does not hash it again.
    public var keyShard: Int? = nil
    /// Set by the engine while a multi-key command runs on several shards: the shard of
    /// each argument (-1 where it is no key), so the command does not hash its keys again.
    public var argumentShards: [Int] = []
    /// Set by the engine while a `sharedRead` command runs under shared shard locks, beside
    /// other readers: lookups then must not delete a key found past its TTL. They treat it
    /// as missing and list it in `expiredUnderSharedLock`, and the engine deletes it
    /// (with the "expired" event) once it holds that shard's lock exclusively.
    public var sharedLock = false
    public var expiredUnderSharedLock: [(db: Database, key: Bytes)] = []

    /// Makes every write so far durable in the append-only file (WAITAOF); false when
    /// there is none. Set by the engine.
    public var syncAppendOnlyFile: () -> Bool = { false }
    /// The module data type a DUMP payload names by id (RESTORE of a module value). Set
    /// by the engine.
    public var moduleType: (UInt64) -> (any RDBModuleType)? = { _ in nil }

    public init(stores: [ShardStore], slots: SlotMap, reply: ReplyWriter) {
        self.stores = stores
        self.slots = slots
        self.reply = reply
    }

    // MARK: Effects

    /// The server's effect stream (Keyspace/Effects.swift).
    public var effects: EffectStream { stores[0].effects }
    /// Effects of the transaction, script or module command running, appended to the
    /// stream as one block when it ends; nil outside one.
    private var effectBatch: [Effect]? = nil
    private var effectBatchDepth = 0
    /// Bumped by `propagate`: a command that recorded its own effect gets no default one.
    public private(set) var explicitEffects = 0
    /// While set, writes record no effects (a module's Call without the "!" flag, as in
    /// Redis, where only what the module replicates itself is propagated).
    public var effectsSuppressed = false

    /// Runs a data command's handler: the one place every path (a client, EXEC, a script,
    /// a function, a module's Call, JavaScript, a blocked client served at once) calls it.
    /// A command that changed the data gets its keyspace event (for the commands whose
    /// event is their own, `KeyspaceEvents.byCommand`, ahead of any the command recorded
    /// itself) and, when it recorded no effect of its own, its deterministic form as its
    /// effect (`EffectRewrites`).
    @inline(__always)
    public func invoke(_ spec: CommandSpec) throws(CommandError) {
        let dirtyBefore = dirty, explicitBefore = explicitEffects, eventsBefore = events.count
        defer {
            if dirty != dirtyBefore { noteChange(spec, explicitEffectsBefore: explicitBefore, eventsBefore: eventsBefore) }
        }
        try spec.handler!(self)
    }

    private func noteChange(_ spec: CommandSpec, explicitEffectsBefore: Int, eventsBefore: Int) {
        if !notifyFlags.isEmpty, let (flag, event) = KeyspaceEvents.byCommand[spec.name], notifyFlags.contains(flag) {
            events.insert(KeyspaceEvent(db: dbIndex, key: args[1], event: event), at: eventsBefore)
        }
        if effects.isEnabled && explicitEffects == explicitEffectsBefore && !effectsSuppressed {
            for args in EffectRewrites.effects(of: spec, self) { record(Effect(db: dbIndex, args)) }
        }
    }

    /// Records `args` as an effect of the running command (in `db`, or the current one).
    public func propagate(_ args: [Bytes], db: Int? = nil) {
        explicitEffects += 1
        guard effects.isEnabled, !effectsSuppressed else { return }
        record(Effect(db: db ?? dbIndex, args))
    }

    /// The running command accounts for its effects itself, and had none to record (an
    /// XCLAIM that claimed nothing): its arguments are not its effect.
    public func recordsOwnEffects() { explicitEffects += 1 }

    private func record(_ effect: Effect) {
        if effectBatch != nil { effectBatch!.append(effect) } else { effects.append(effect) }
    }

    /// A transaction, script or module command starts: its effects stay together.
    /// Batches nest (a script inside EXEC); the outermost one appends them.
    public func beginEffectBatch() {
        effectBatchDepth += 1
        if effectBatchDepth == 1 { effectBatch = [] }
    }

    /// Appends the batch: one effect alone, several inside MULTI/EXEC, as Redis
    /// propagates a transaction or a script's writes.
    public func endEffectBatch() {
        effectBatchDepth -= 1
        guard effectBatchDepth == 0, let batch = effectBatch else { return }
        effectBatch = nil
        guard effects.isEnabled, !batch.isEmpty else { return }
        if batch.count == 1 {
            effects.append(batch)
        } else {
            effects.append([Effect(db: -1, "MULTI")] + batch + [Effect(db: -1, "EXEC")])
        }
    }

    public var databaseCount: Int { stores[0].databases.count }

    @inline(__always)
    public func db(_ key: Bytes) -> Database {
        stores[keyShard ?? slots.shard(of: key)].databases[dbIndex]
    }

    /// The database holding the key that is argument `i`.
    @inline(__always)
    public func db(argument i: Int) -> Database {
        if i < argumentShards.count, argumentShards[i] >= 0 { return stores[argumentShards[i]].databases[dbIndex] }
        return db(args[i])
    }

    public func db(_ key: Bytes, index: Int) -> Database {
        stores[slots.shard(of: key)].databases[index]
    }

    /// The current database's part on every shard (commands flagged `allShards`).
    public var allDatabases: [Database] { stores.map { $0.databases[dbIndex] } }

    @inline(__always)
    public func lookup(_ key: Bytes) -> Entry? {
        withDatabase(shard: keyShard ?? slots.shard(of: key)) { lookup(key, in: $0) }
    }

    public func lookup(argument i: Int) -> Entry? {
        withDatabase(shard: shard(argument: i)) { lookup(args[i], in: $0) }
    }

    /// A lookup that counts toward keyspace_hits / keyspace_misses.
    @inline(__always)
    public func lookupRead(_ key: Bytes) -> Entry? {
        withDatabase(shard: keyShard ?? slots.shard(of: key)) { countedLookup(key, in: $0) }
    }

    public func lookupRead(argument i: Int) -> Entry? {
        withDatabase(shard: shard(argument: i)) { countedLookup(args[i], in: $0) }
    }

    @inline(__always)
    private func shard(argument i: Int) -> Int {
        if i < argumentShards.count, argumentShards[i] >= 0 { return argumentShards[i] }
        return keyShard ?? slots.shard(of: args[i])
    }

    /// Runs `body` with the current database's part on shard `s`, without retaining it.
    /// The lookup path avoids `db(_:)` because every shard thread uses every shard's
    /// databases: retaining one writes its reference count, a cache line the threads
    /// would then take turns on for every command.
    @inline(__always)
    private func withDatabase<R>(shard s: Int, _ body: (Database) -> R) -> R {
        withDatabase(shard: s, index: dbIndex, body)
    }

    /// Runs `body` with the current database's part that holds `key`, without retaining
    /// it (see `withDatabase`): for the write paths of the hottest commands, where a
    /// retain of a database shared by every shard thread costs a contended cache line.
    @inline(__always)
    public func inDatabase<R>(of key: Bytes, _ body: (Database) -> R) -> R {
        withDatabase(shard: keyShard ?? slots.shard(of: key), body)
    }

    /// The same for the key that is argument `i`.
    @inline(__always)
    public func inDatabase<R>(ofArgument i: Int, _ body: (Database) -> R) -> R {
        withDatabase(shard: shard(argument: i), body)
    }

    /// The same for database number `index`.
    @inline(__always)
    private func withDatabase<R>(shard s: Int, index: Int, _ body: (Database) -> R) -> R {
        let generation = ShardStore.layoutGeneration.load(ordering: .relaxed)
        if generation != databaseMapGeneration { rebuildDatabaseMap(generation) }
        return databaseMap[s &* databaseMapStride &+ index]._withUnsafeGuaranteedRef(body)
    }

    /// Every store's databases by (shard, number), unretained: the stores keep them alive
    /// as long as the server runs, and only SWAPDB moves them (then the map is rebuilt).
    private var databaseMap: [Unmanaged<Database>] = []
    private var databaseMapStride = 0
    private var databaseMapGeneration = -1

    private func rebuildDatabaseMap(_ generation: Int) {
        databaseMap = stores.flatMap { $0.databases.map { Unmanaged.passUnretained($0) } }
        databaseMapStride = databaseCount
        databaseMapGeneration = generation
    }

    /// Every lookup of a command goes through here, so that none deletes under a shared
    /// lock; it marks the key used (KeyAccess.swift), as Redis's lookups do.
    @inline(__always)
    private func lookup(_ key: Bytes, in db: Database) -> Entry? {
        let e = lookupWithoutTouching(key, in: db)
        e?.touch()
        return e
    }

    @inline(__always)
    private func lookupWithoutTouching(_ key: Bytes, in db: Database) -> Entry? {
        if !sharedLock { return db.lookup(key, now: now) }
        var expired = false
        let e = db.lookupWithoutExpiring(key, now: now, expired: &expired)
        if expired { expiredUnderSharedLock.append((db, key)) }
        return e
    }

    /// A lookup that leaves the key's access time and frequency alone, for commands that
    /// only look at a key's metadata (TYPE, TTL, OBJECT), as Redis's LOOKUP_NOTOUCH.
    public func peek(_ key: Bytes) -> Entry? {
        withDatabase(shard: keyShard ?? slots.shard(of: key)) { lookupWithoutTouching(key, in: $0) }
    }

    public func peek(argument i: Int) -> Entry? {
        withDatabase(shard: shard(argument: i)) { lookupWithoutTouching(args[i], in: $0) }
    }

    @inline(__always)
    private func countedLookup(_ key: Bytes, in db: Database) -> Entry? {
        let e = lookup(key, in: db)
        if e == nil {
            keyspaceMisses += 1
            notify(.keyMiss, "keymiss", key)
        } else {
            keyspaceHits += 1
        }
        return e
    }

    /// Starts the cache misses of looking up the key arguments at `positions` before any of
    /// them is looked up, so that a command touching many keys (MSET, MGET) waits for
    /// their misses side by side instead of one after another.
    public func prefetchKeys(_ positions: StrideTo<Int>) {
        for i in positions { startPrefetch(args[i], shard: shard(argument: i), database: dbIndex) }
        finishPrefetch()
    }

    /// Prefetching keys takes two rounds: every key's bucket slot first (`startPrefetch`,
    /// one per key), then every chain's first entry (`finishPrefetch`), which reads the
    /// slot that the first round brought in. The caller holds the lock of every shard
    /// named, so the tables stay as they are between the two rounds.
    public func startPrefetch(_ key: Bytes, shard s: Int, database index: Int) {
        // Unretained, for the reason `withDatabase` gives.
        let table = withDatabase(shard: s, index: index) { Unmanaged.passUnretained($0.table) }
        let hash = KeyTable.hash(key)
        table._withUnsafeGuaranteedRef { $0.prefetchBucket(hash) }
        prefetching.append((table, hash))
    }

    public func finishPrefetch() {
        for (table, hash) in prefetching { table._withUnsafeGuaranteedRef { $0.prefetchChain(hash) } }
        prefetching.removeAll(keepingCapacity: true)
    }
    private var prefetching: [(Unmanaged<KeyTable>, Int)] = []

    public func delete(_ key: Bytes) -> Bool { db(key).delete(key, now: now) }

    public func delete(argument i: Int) -> Bool { db(argument: i).delete(args[i], now: now) }

    /// DEL and UNLINK: freed on the lazy-free thread when `lazily` and large.
    public func delete(argument i: Int, lazily: Bool) -> Bool { db(argument: i).delete(args[i], now: now, lazily: lazily) }

    // MARK: typed lookups

    public func string(_ key: Bytes) throws(CommandError) -> Bytes? {
        guard let e = lookupRead(key) else { return nil }
        guard case .string(let s) = e.value else { throw .wrongType }
        return s
    }

    /// Changes the string at `key` in place (`Entry.modifyString`), or stores what `body`
    /// makes of no bytes when the key is missing; WRONGTYPE when it holds another type.
    public func modifyString<R>(_ key: Bytes, _ body: (inout ByteBuffer) -> R) throws(CommandError) -> R {
        if let e = lookup(key) {
            guard let r = e.modifyString(body) else { throw .wrongType }
            return r
        }
        var bytes = ByteBuffer()
        let r = body(&bytes)
        db(key).add(key, .string(Bytes(bytes)))
        return r
    }

    public func list(_ key: Bytes) throws(CommandError) -> ListValue? {
        guard let e = lookup(key) else { return nil }
        guard case .list(let l) = e.value else { throw .wrongType }
        return l
    }

    public func hash(_ key: Bytes) throws(CommandError) -> HashFields? {
        guard let e = lookup(key) else { return nil }
        guard case .hash(let h) = e.value else { throw .wrongType }
        return h
    }

    /// Runs `body` on the hash at `key` in place (Entry.modifyHash), on a new empty one that
    /// is then stored when the key is missing; WRONGTYPE for another type.
    public func modifyHash<R>(_ key: Bytes, _ body: (inout HashFields) throws(CommandError) -> R) throws(CommandError) -> R {
        guard let e = lookup(key) else {
            var h = HashFields()
            let r = try body(&h)
            if !h.isEmpty { db(key).add(key, .hash(h)) }
            return r
        }
        guard let r = try e.modifyHash(body) else { throw .wrongType }
        return r
    }

    public func set(_ key: Bytes) throws(CommandError) -> SetValue? {
        guard let e = lookup(key) else { return nil }
        guard case .set(let s) = e.value else { throw .wrongType }
        return s
    }

    public func zset(_ key: Bytes) throws(CommandError) -> SortedSetValue? {
        guard let e = lookup(key) else { return nil }
        guard case .zset(let z) = e.value else { throw .wrongType }
        return z
    }

    public func stream(_ key: Bytes) throws(CommandError) -> StreamValue? {
        guard let e = lookup(key) else { return nil }
        guard case .stream(let s) = e.value else { throw .wrongType }
        return s
    }

    public func listOrCreate(_ key: Bytes) throws(CommandError) -> ListValue {
        if let l = try list(key) { return l }
        let l = ListValue()
        db(key).add(key, .list(l))
        return l
    }

    public func setOrCreate(_ key: Bytes) throws(CommandError) -> SetValue {
        if let s = try set(key) { return s }
        let s = SetValue()
        db(key).add(key, .set(s))
        return s
    }

    /// Runs `body` on the sorted set at `key` in place (Entry.modifySortedSet), on a new
    /// empty one that is then stored if not left empty when the key is missing; WRONGTYPE
    /// for another type.
    public func modifySortedSet<R>(_ key: Bytes, _ body: (inout SortedSetValue) throws(CommandError) -> R) throws(CommandError) -> R {
        guard let e = lookup(key) else {
            var z = SortedSetValue()
            let r = try body(&z)
            if z.count > 0 { db(key).add(key, .zset(z)) }
            return r
        }
        guard let r = try e.modifySortedSet(body) else { throw .wrongType }
        return r
    }

    /// Deletes `key` when its collection became empty, as Redis never keeps empty ones.
    public func deleteIfEmpty(_ key: Bytes, _ isEmpty: Bool) {
        if isEmpty {
            _ = db(key).delete(key, now: now)
            notify(.generic, "del", key)
        }
    }

    // MARK: arguments

    public func int(_ i: Int) throws(CommandError) -> Int {
        guard let v = Numbers.int(args[i]) else { throw .notInteger }
        return v
    }

    public func double(_ i: Int) throws(CommandError) -> Double {
        guard let v = Numbers.double(args[i]) else { throw .notFloat }
        return v
    }

    public func option(_ i: Int, _ name: StaticString) -> Bool {
        i < args.count && args[i].equalsIgnoringCase(name)
    }
}
