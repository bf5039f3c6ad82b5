import Synchronization
import HeapModule
import RESP

/// One numbered database's part on one shard: the key table plus expiry.
///
/// Expiry is lazy (a key found past its deadline is deleted on access) and active: a
/// min-heap of (deadline, key) lets the shard's periodic tick delete exactly the keys
/// that are due. Heap items are not removed when a TTL changes or a key is deleted;
/// they are checked against the entry when they come due and dropped if stale, and the
/// heap is rebuilt when stale items outnumber live TTLs.
public final class Database {
    public let table = KeyTable()
    /// This database's number, for ready-key signals (SWAPDB trades it, `tradeNumbers`).
    public private(set) var index: Int
    private let ready: ReadyKeys
    let keyEvents: KeyEventLog
    /// Keys that blocked clients wait on, with how many wait on each. Kept by the engine's
    /// waiter table; only its emptiness is checked on the write path.
    public private(set) var blockedKeys: [Bytes: Int] = [:]
    private let expiryHold: ExpiryHold
    /// Where a key that expires is recorded as a DEL (the effect stream).
    let effects: EffectStream
    var expiries = Heap<ExpiryItem>()
    /// Keys that carry a TTL.
    public private(set) var volatileCount = 0
    /// Keys removed because their TTL passed, lazily or actively (INFO expired_keys).
    public private(set) var expiredTotal = 0
    /// Keys removed to stay under maxmemory (INFO evicted_keys; Eviction.swift).
    public internal(set) var evictedTotal = 0
    /// The snapshot being written, while one is: every entry this database hands out for
    /// a change, or changes itself, is first written to it unless it already is there
    /// (SnapshotGuard). Set and cleared under every shard lock.
    public var snapshot: SnapshotGuard? = nil

    public init(index: Int = 0, ready: ReadyKeys = ReadyKeys(), keyEvents: KeyEventLog = KeyEventLog(),
                expiryHold: ExpiryHold = ExpiryHold(), effects: EffectStream = EffectStream()) {
        self.index = index
        self.ready = ready
        self.keyEvents = keyEvents
        self.expiryHold = expiryHold
        self.effects = effects
    }

    /// A key removed because its TTL passed: counted, announced, and a DEL in the effect
    /// stream (replicas and the AOF delete it when the primary does, as in Redis).
    private func noteExpired(_ key: Bytes) {
        expiredTotal += 1
        if keyEvents.isTracking { keyEvents.record(.expired, DatabaseKey(db: index, key: key)) }
        if effects.isEnabled { effects.append(Effect(db: index, [Bytes("DEL"), key])) }
    }

    public var count: Int { table.count }

    /// The live entry for `key`, deleting it first if its TTL has passed (unless expiry
    /// is held: then it is only reported missing).
    @inline(__always)
    public func lookup(_ key: Bytes, now: Int64) -> Entry? {
        guard let e = table.find(key) else { return nil }
        if e.expireAt != 0 && e.expireAt <= now {
            // Replaying an append-only file, a key is as the commands left it: its
            // deletion is in the file where it happened, if it did.
            if expiryHold.isReplaying { return e }
            if expiryHold.isHolding(now: now) { return nil }
            removeEntry(e, lazily: LazyFree.onExpire.load(ordering: .relaxed))
            noteExpired(key)
            return nil
        }
        if let s = snapshot, e.savedEpoch != s.epoch { s.preserve(e, of: self) }
        return e
    }

    /// The live entry for `key`, for a reader holding the shard lock shared: an entry past
    /// its TTL is left in place (deleting it would be a write), reported in `expired`.
    @inline(__always)
    public func lookupWithoutExpiring(_ key: Bytes, now: Int64, expired: inout Bool) -> Entry? {
        guard let e = table.find(key) else { return nil }
        if e.expireAt != 0 && e.expireAt <= now {
            expired = true
            return nil
        }
        return e
    }

    /// Adds a key that is not present (callers look it up first).
    @discardableResult
    public func add(_ key: Bytes, _ value: Value) -> Entry {
        if expiryHold.mayHaveHeld { removeHeldEntry(key) }
        if !blockedKeys.isEmpty { signalReady(key) }
        if keyEvents.isTracking { keyEvents.record(.new, DatabaseKey(db: index, key: key)) }
        return markedNew(table.insert(key, value: value))
    }

    /// A key created while a snapshot runs is not part of it.
    @inline(__always)
    private func markedNew(_ e: Entry) -> Entry {
        if let s = snapshot { e.savedEpoch = s.epoch }
        return e
    }

    @inline(__always)
    private func preserve(_ e: Entry) {
        if let s = snapshot, e.savedEpoch != s.epoch { s.preserve(e, of: self) }
    }

    /// SET semantics: replaces any value, and the TTL unless `keepTTL`.
    @discardableResult
    public func overwrite(_ key: Bytes, _ value: Value, now: Int64, keepTTL: Bool = false) -> Entry {
        overwrite(lookup(key, now: now), key, value, keepTTL: keepTTL)
    }

    /// The same, for a caller that has just looked the key up (`existing`, from `lookup`);
    /// a non-zero `expireAt` gives the key that deadline (as `setExpire` would, without
    /// first making an entry without one).
    @discardableResult
    public func overwrite(_ existing: Entry?, _ key: Bytes, _ value: Value, keepTTL: Bool = false,
                          expireAt: Int64 = 0) -> Entry {
        if existing == nil && expiryHold.mayHaveHeld { removeHeldEntry(key) }
        if !blockedKeys.isEmpty { signalReady(key) }
        if let e = existing {
            preserve(e)
            if LazyFree.onServerDelete.load(ordering: .relaxed) {
                var replaced = e.value
                e.value = value
                LazyFree.shared.take(&replaced)
            } else {
                e.value = value
            }
            if expireAt != 0 { return setExpire(e, at: expireAt) }
            if !keepTTL && e.expireAt != 0 { persist(e) }
            return e
        }
        if keyEvents.isTracking { keyEvents.record(.new, DatabaseKey(db: index, key: key)) }
        let e = markedNew(table.insert(key, value: value, expireAt: expireAt))
        if expireAt != 0 {
            volatileCount += 1
            noteDeadline(expireAt, of: key)
        }
        return e
    }

    /// Deletes `key`; its value is freed on the lazy-free thread when `lazily` and large
    /// (by default as lazyfree-lazy-server-del says, Redis's rule for internal deletes).
    @discardableResult
    public func delete(_ key: Bytes, now: Int64, lazily: Bool = LazyFree.onServerDelete.load(ordering: .relaxed)) -> Bool {
        guard let e = lookup(key, now: now) else { return false }
        removeEntry(e, lazily: lazily)
        return true
    }

    public func removeEntry(_ e: Entry, lazily: Bool = false) {
        preserve(e)
        if !blockedKeys.isEmpty { signalReady(e.key) }
        if e.expireAt != 0 { volatileCount -= 1 }
        table.remove(e.key)
        if lazily { LazyFree.shared.takeValue(of: e) }
    }

    /// Gives the key of `e` the deadline `deadline`, and returns its entry from now on: a
    /// key's first TTL replaces its entry by an ExpiringEntry (see Entry), so the caller
    /// must go on with the returned one.
    public func setExpire(_ e: Entry, at deadline: Int64) -> Entry {
        preserve(e)
        if e.expireAt == 0 { volatileCount += 1 }
        let expiring = e.asExpiring ?? withDeadline(e)
        expiring.deadline = deadline
        noteDeadline(deadline, of: e.key)
        return expiring
    }

    /// Queues `key` for active expiry at `deadline` (its entry already carries it).
    private func noteDeadline(_ deadline: Int64, of key: Bytes) {
        expiries.insert(ExpiryItem(deadline: deadline, key: key))
        if expiries.count > 2 * volatileCount + 1024 { rebuildExpiries() }
    }

    /// `e` replaced in the table by an ExpiringEntry of the same key, value and access.
    private func withDeadline(_ e: Entry) -> ExpiringEntry {
        let expiring = ExpiringEntry(copying: e)
        table.replace(e, with: expiring)
        return expiring
    }

    public func persist(_ e: Entry) {
        if let expiring = e.asExpiring, expiring.deadline != 0 {
            preserve(e)
            volatileCount -= 1
            expiring.deadline = 0
        }
    }

    /// A key that expired while expiry was held stays in the table, reported missing; a
    /// write that finds it missing and adds the key again removes it first (as expired).
    private func removeHeldEntry(_ key: Bytes) {
        guard let stale = table.find(key) else { return }
        removeEntry(stale)
        noteExpired(key)
    }

    /// Deletes up to `limit` keys whose deadline is at or before `now`; returns how many.
    public func expireDue(now: Int64, limit: Int) -> Int {
        if expiryHold.isHolding(now: now) || expiryHold.isReplaying { return 0 }
        var removed = 0
        while removed < limit, let top = expiries.min, top.deadline <= now {
            _ = expiries.popMin()
            if let e = table.find(top.key), e.expireAt == top.deadline {
                removeEntry(e, lazily: LazyFree.onExpire.load(ordering: .relaxed))
                noteExpired(e.key)
                removed += 1
            }
        }
        return removed
    }

    /// Empties the database (FLUSHDB, FLUSHALL); `lazily`, the entries are freed on the
    /// lazy-free thread (FLUSHALL ASYNC).
    public func removeAll(lazily: Bool = false) {
        if let s = snapshot { table.forEach { e in if e.savedEpoch != s.epoch { s.preserve(e, of: self) } } }
        if !blockedKeys.isEmpty { for key in blockedKeys.keys { signalReady(key) } }
        let keys = table.count
        if lazily && keys > 0 { LazyFree.shared.hand(table.takeAll(), objects: keys) } else { table.removeAll() }
        expiries = Heap()
        volatileCount = 0
    }

    // MARK: blocked keys

    /// Records that `key` may now serve a blocked client (it was created, replaced,
    /// deleted or, for streams, appended to). Cheap when nobody waits on it.
    @inline(__always)
    public func signalReady(_ key: Bytes) {
        if !blockedKeys.isEmpty && blockedKeys[key] != nil { ready.append(DatabaseKey(db: index, key: key)) }
    }

    /// SWAPDB: `self` and `other` have traded places in their store's list, so they trade
    /// numbers. The blocked-key registry stays with the number (clients wait on a number
    /// and a key, not on the data), and every key waited on in either database is
    /// signalled ready, so its clients look again at what the number now holds (Redis
    /// likewise serves, or ends with "key no longer exists", clients of swapped databases).
    public func tradeNumbers(with other: Database) {
        swap(&index, &other.index)
        swap(&blockedKeys, &other.blockedKeys)
        for key in blockedKeys.keys { signalReady(key) }
        for key in other.blockedKeys.keys { other.signalReady(key) }
    }

    public func addBlocked(_ key: Bytes) { blockedKeys[key, default: 0] += 1 }

    public func removeBlocked(_ key: Bytes) {
        guard let n = blockedKeys[key] else { return }
        blockedKeys[key] = n > 1 ? n - 1 : nil
    }

    func rebuildExpiries() {
        var items: [ExpiryItem] = []
        items.reserveCapacity(volatileCount)
        table.forEach { e in
            if e.expireAt != 0 { items.append(ExpiryItem(deadline: e.expireAt, key: e.key)) }
        }
        expiries = Heap(items)
    }
}

/// A snapshot being written (Engine's Snapshot.swift), as a database sees it: before an
/// entry that is not yet in the snapshot's file (its `savedEpoch` is not `epoch`)
/// changes, is deleted or is handed out for a change, the database has the snapshot write
/// it as it is, and the snapshot marks it written. Called under the shard's lock.
public protocol SnapshotGuard: AnyObject {
    var epoch: UInt32 { get }
    func preserve(_ entry: Entry, of db: Database)
}

struct ExpiryItem: Comparable {
    let deadline: Int64
    let key: Bytes
    static func < (a: ExpiryItem, b: ExpiryItem) -> Bool { a.deadline < b.deadline }
    static func == (a: ExpiryItem, b: ExpiryItem) -> Bool { a.deadline == b.deadline && a.key == b.key }
}

/// Everything one shard owns of the keyspace: its slots in every numbered database.
/// Whoever touches it must hold the shard's lock (the Engine guarantees that).
public final class ShardStore: @unchecked Sendable {
    public var databases: [Database]
    /// Bumped whenever some store's `databases` changes order (SWAPDB, under every shard
    /// lock), so that a cache of which object holds which database (CommandContext's) knows
    /// to rebuild itself. Read under a shard lock, which orders it after the swap.
    public static let layoutGeneration = Atomic<Int>(0)
    /// Blocked-on keys that writes on this shard touched since the engine last looked.
    public let ready = ReadyKeys()
    public let keyEvents = KeyEventLog()
    /// The server's effect stream, which every store shares.
    public let effects: EffectStream
    /// The best eviction candidates seen on this shard (Eviction.swift), kept by whoever
    /// holds the shard's lock.
    public var evictionPool = EvictionPool()

    /// Whether a command left ready keys or key events for the engine to take.
    @inline(__always)
    public var hasNewsForEngine: Bool { !ready.keys.isEmpty || !keyEvents.entries.isEmpty }

    public init(databases: Int, expiryHold: ExpiryHold = ExpiryHold(), effects: EffectStream = EffectStream()) {
        let ready = self.ready, keyEvents = self.keyEvents
        self.effects = effects
        self.databases = (0..<databases).map {
            Database(index: $0, ready: ready, keyEvents: keyEvents, expiryHold: expiryHold, effects: effects)
        }
    }

    /// Wall-clock microseconds, for sleeping exactly until a millisecond deadline.
    public static func nowMicroseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }

    /// Wall-clock milliseconds, the unit of every deadline in the keyspace.
    public static func nowMilliseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}

/// A key in a numbered database.
public struct DatabaseKey: Hashable, Sendable {
    public let db: Int
    public let key: Bytes
    public init(db: Int, key: Bytes) { self.db = db; self.key = key }
}

/// Keys that became worth a look for blocked clients, shared by one shard's databases.
/// The engine empties it after each command (under the shard lock) and serves the
/// waiters of those keys once the command has finished.
///
/// Each key carries the server-wide order in which it was readied: one command may ready
/// keys on several shards (a transaction, a script), and a client blocked on several of
/// them is served from the one readied first, as Redis serves its ready list in order.
public final class ReadyKeys: @unchecked Sendable {
    public struct Ready: Sendable {
        public let key: DatabaseKey
        public let order: UInt64
    }
    public var keys: [Ready] = []
    private static let nextOrder = Atomic<UInt64>(0)
    public init() {}

    public func append(_ key: DatabaseKey) {
        keys.append(Ready(key: key, order: Self.nextOrder.wrappingAdd(1, ordering: .relaxed).oldValue))
    }
}

/// Keys that expired or were created on one shard, for the `x` and `n` keyspace
/// notifications; recorded only while those are enabled, taken by the engine after each
/// command under the shard lock.
public final class KeyEventLog: @unchecked Sendable {
    public enum Kind: Sendable {
        case expired, new, evicted
        /// The notification's event name.
        public var eventName: String {
            switch self {
            case .expired: return "expired"
            case .new: return "new"
            case .evicted: return "evicted"
            }
        }
    }
    /// Bit 0: record expirations; bit 1: new keys; bit 2: evictions. Set by CONFIG from any thread.
    public let tracking = Atomic<UInt8>(0)
    public var entries: [(Kind, DatabaseKey)] = []
    public init() {}

    @inline(__always) public var isTracking: Bool { tracking.load(ordering: .relaxed) != 0 }

    public func record(_ kind: Kind, _ key: DatabaseKey) {
        let bits = tracking.load(ordering: .relaxed)
        let bit: UInt8 = switch kind { case .expired: 1; case .new: 2; case .evicted: 4 }
        if bits & bit != 0 { entries.append((kind, key)) }
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// Expiry suspended, server-wide, while CLIENT PAUSE is in force (WRITE or ALL), as in
/// Redis: a key past its TTL reads as missing but is not deleted, actively or lazily, so
/// that nothing is written (and no DEL would be propagated) during the pause; the first
/// access after it deletes the key.
///
/// Invariants: `until` (wall-clock milliseconds; 0 when none) is written only by CLIENT
/// PAUSE/UNPAUSE and read by any shard under its own lock. `everHeld` is set with the
/// first hold and never cleared: it only spares writes the check for a held entry before
/// any pause has happened.
public final class ExpiryHold: Sendable {
    private let until = Atomic<Int64>(0)
    private let everHeld = Atomic<Bool>(false)

    public init() {}

    @inline(__always)
    public func isHolding(now: Int64) -> Bool { until.load(ordering: .relaxed) > now }

    /// Whether a key may have been left in place past its TTL by some hold.
    @inline(__always)
    public var mayHaveHeld: Bool { everHeld.load(ordering: .relaxed) }

    public func hold(until deadline: Int64) {
        everHeld.store(true, ordering: .relaxed)
        until.store(deadline, ordering: .releasing)
    }

    public func release() { until.store(0, ordering: .releasing) }

    /// Set while an append-only file is replayed at start, before any shard runs: no key
    /// expires then (as Redis does not expire keys while loading).
    private let replaying = Atomic<Bool>(false)
    public var isReplaying: Bool { replaying.load(ordering: .relaxed) }
    public func setReplaying(_ on: Bool) { replaying.store(on, ordering: .relaxed) }
}
