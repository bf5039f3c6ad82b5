/// Shard locks kept across the commands of the input batches of one event-loop pass.
///
/// A pipelining client sends many commands in one read, and one pass of a shard's event
/// loop hands it the reads of many clients. Taking and dropping a shard lock
/// around each of them is cheap when nobody else wants the lock, but when another shard's
/// thread does, every command becomes a hand-off between threads (a futex wake, often a
/// context switch, and the hot data moving between CPU caches). That happens both when
/// the batch hits one key (redis-benchmark's ZADD, a job queue's list) and when its keys
/// are spread over the shards: with two shards, every other command of a random-key
/// pipeline wants the other shard's lock.
///
/// So a shard keeps the lock set of a plain data command after it ran (`KeptLocks`, held by
/// the shard's `LockSection`). The
/// next command, of the same batch or of the next client's batch in the same pass, runs
/// under it when its locks are in the set or can be added to it by a try-lock; the first
/// lock that is not free this instant releases the whole set, and that command locks as
/// usual. A thread that has to wait for a lock announces itself (`ShardLock.isWanted`),
/// and a kept set with a wanted lock serves at most `limitWhenWanted` commands in all, so
/// a waiter sits out a short stretch of one pass (a few pipelined batches), never a whole
/// pipeline. Two shard threads writing random keys of both shards therefore hand their
/// locks over once per stretch instead of once per client's batch: each hand-over is a
/// futex wake and a sleep, which at 16 pipelined commands a batch cost more than the
/// commands themselves. Each command is still atomic and isolated: the set only
/// grows the critical section to cover several whole commands in request order, which a
/// single-threaded server gives every command anyway.
///
/// A set is kept in the mode its first command took it in (ShardLock.swift): shared after
/// a read-only command, exclusive otherwise. An exclusive set serves both kinds; a shared
/// one serves only readers and is released when a writer comes, since a read lock is never
/// upgraded in place.
///
/// Invariants:
/// - A `KeptLocks` belongs to one thread (a shard's), and its set is exactly the locks
///   that thread holds on its behalf, every one of them in `mode`.
/// - The set grows only by try-locks, which never wait, so they may be taken in any order.
///   The thread never waits for a lock while it keeps one: the shard empties the set
///   before any other code path that takes locks (scripts, modules, engine commands,
///   queueing into MULTI, closing a connection) and when the event-loop pass ends, so the
///   ascending-order rule of `LockSection` holds for every wait, and nothing re-enters a
///   lock it already holds. Between two clients' batches of a pass the set stays kept
///   only across code that takes no locks (sending, counting a client's migration
///   streak); closing or killing a connection, deferred work, a migration's hand-over and
///   the inbox release it first, and the loop releases it after every pass.
/// - A set serves at most `limit` commands, and at most `limitWhenWanted` once one of its
///   locks is wanted.
/// - A command whose work must be seen by other threads before the next one runs (it made
///   keys ready for blocked clients, recorded keyspace events, or blocked its client)
///   releases the set at once, so blocked clients are served between commands exactly as
///   before (`LockSection.keepOrLeave`).
struct KeptLocks {
    static let limit = 1024
    static let limitWhenWanted = 128

    private(set) var held = ShardLockSet()
    /// How every lock in `held` is held.
    private(set) var mode = LockMode.exclusive
    /// Commands served under `held` so far.
    private var uses = 0

    var isEmpty: Bool { held.count == 0 }

    /// Whether the kept set covers shard `s` for a command that needs it in `wanted` mode
    /// (an exclusive set covers a reader too; the command then runs as `mode` says),
    /// after growing it by a try-lock if need be, and may serve one more command; counts
    /// that command. On false the set is released and the caller locks as usual.
    @inline(__always)
    mutating func cover(_ s: Int, _ wanted: LockMode, _ locks: [ShardLock]) -> Bool {
        guard !isEmpty, mayServe(wanted, locks) else { return false }
        if !held.contains(s) && !grow(by: s, locks) { return false }
        uses += 1
        return true
    }

    /// The same for every shard of `other`.
    mutating func cover(_ other: ShardLockSet, _ wanted: LockMode, _ locks: [ShardLock]) -> Bool {
        guard !isEmpty, mayServe(wanted, locks) else { return false }
        for s in other.shards where !held.contains(s) {
            guard grow(by: s, locks) else { return false }
        }
        uses += 1
        return true
    }

    /// Keeps `other`, which the caller has just locked in `mode` for a command, when
    /// nothing is kept.
    mutating func keep(_ other: ShardLockSet, _ mode: LockMode) {
        guard isEmpty else { return }
        held.assign(other)
        self.mode = mode
        uses = 1
    }

    /// Keeps shard `s`, which the caller has just locked in `mode` for a command, when
    /// nothing is kept.
    mutating func keep(single s: Int, _ mode: LockMode) {
        guard isEmpty else { return }
        held.assign(single: s)
        self.mode = mode
        uses = 1
    }

    /// Unlocks and forgets the kept set.
    mutating func release(_ locks: [ShardLock]) {
        held.unlock(locks)
        held.removeAll()
        uses = 0
    }

    /// Whether the set may serve one more command needing `wanted`; otherwise releases
    /// it. A shared set cannot serve a writer: read locks are not upgraded in place, since
    /// two readers upgrading at once would wait for each other.
    @inline(__always)
    private mutating func mayServe(_ wanted: LockMode, _ locks: [ShardLock]) -> Bool {
        if (mode == .exclusive || wanted == .shared)
            && (uses < KeptLocks.limitWhenWanted || (uses < KeptLocks.limit && !isWanted(locks))) { return true }
        release(locks)
        return false
    }

    private func isWanted(_ locks: [ShardLock]) -> Bool {
        for s in held.shards where locks[s].isWanted { return true }
        return false
    }

    /// Adds shard `s` if its lock is free this instant; otherwise releases the set.
    private mutating func grow(by s: Int, _ locks: [ShardLock]) -> Bool {
        if locks[s].tryLock(mode) {
            held.insert(s)
            return true
        }
        release(locks)
        return false
    }
}

extension Shard {
    /// Nothing `conn`'s command did has to reach other threads before the next one runs
    /// (LockSection.keepOrLeave).
    @inline(__always)
    func mayKeepLocks(after conn: Connection) -> Bool {
        blocking.readyQueue.isEmpty && context.events.isEmpty && pendingKeyEvents.isEmpty && context.expiredUnderSharedLock.isEmpty
            && !conn.suspended && !conn.closing
    }
}
