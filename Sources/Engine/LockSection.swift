import Commands
import Keyspace

// The lock section: the one way any thread takes shard locks.
//
// Whatever reads or writes a shard's keyspace, waiter table or watchers does so between
// entering and leaving a `LockSection`: a shard thread's data commands (their locks kept
// across the commands of a batch, BatchLocks.swift), transactions, scripts and their
// widening (ScriptSection.swift), module commands, timers and blocked replies, the
// service of blocked clients (Blocking.swift), active expiry, WATCH, INFO's key counts;
// and, off the shard threads, a module's thread-safe context and a JavaScript library's
// thread. Every shard thread has its own section (`Shard.section`); threads that are no
// shard's share `Server.offShardSection`, which keeps no state of its own.
//
// The section keeps three rules that used to be repeated at every call site:
//   1. Locks are waited for in ascending shard order. A set that meets a contended lock
//      while it holds others steps aside while a script escalates (the one waiter allowed
//      out of order, ScriptSection.swift), and starts again after it.
//   2. What a waiter does about a script past busy-reply-threshold is the caller's policy
//      (`LockWaitPolicy`), not the lock's: a client's command gives up and answers -BUSY,
//      a module thread or timer waits it out.
//   3. Leaving a section runs the epilogue in one place. `leave` takes what the section's
//      writes made ready (keys blocked clients wait on) from each shard it held, then lets
//      the locks go; `finish`, with no lock held, deletes keys a shared-lock reader found
//      expired, serves the blocked clients and publishes the keyspace events. Off a shard
//      thread, `leave` hands ready keys and events to the shards that serve them.

/// What a thread waiting for a contended shard lock does while a script (or a yielding
/// module operation) is announced busy.
package enum LockWaitPolicy {
    /// Give up without the lock: the caller answers -BUSY (a client's command), or
    /// leaves the work for later (expiry, INFO's counts).
    case refuseWhenBusy
    /// Wait however long the script runs (module threads and timers, blocked replies).
    case outlastBusy
}

/// The shard locks one thread holds, and the only code that takes them (see the top of
/// this file).
///
/// Invariants: a shard's section is used only on that shard's thread; `kept` is exactly
/// the set of locks held for the batch (BatchLocks.swift), and is empty whenever the
/// section waits for a lock, so every wait happens in ascending order or as a script's
/// escalation. The off-shard section has no state (`kept` stays empty, `finish` is never
/// called on it), which is why threads may share it.
package final class LockSection: @unchecked Sendable {
    let locks: [ShardLock]
    private let busy: ScriptBusy
    /// The shard thread this section belongs to; nil for the off-shard section.
    private unowned(unsafe) let shard: Shard?
    private unowned(unsafe) let server: Server?
    /// Every shard, in order: what module operations, EXEC with a script and a
    /// whole-keyspace script hold.
    package let everyShard: ShardLockSet
    /// Locks kept from earlier commands of the batch being processed (shard threads).
    var kept = KeptLocks()

    init(server: Server, shard: Shard?) {
        self.server = server
        self.shard = shard
        locks = server.locks
        busy = server.scriptBusy
        everyShard = ShardLockSet.all(server.locks.count)
    }

    /// A section over bare locks, with no shard or server to hand ready keys to (the lock
    /// stress tests: `leave` then only unlocks).
    init(locks: [ShardLock], busy: ScriptBusy) {
        server = nil
        shard = nil
        self.locks = locks
        self.busy = busy
        everyShard = ShardLockSet.all(locks.count)
    }

    // MARK: entering

    /// Takes shard `s`'s lock for a caller that holds no other; false when `policy` gave up.
    @inline(__always)
    package func enter(_ s: Int, _ policy: LockWaitPolicy, _ mode: LockMode = .exclusive) -> Bool {
        if locks[s].tryLock(mode) { return true }
        return locks[s].wait(mode) { self.stop(policy, holdingOthers: false) != nil }
    }

    /// Takes every lock of `set` in ascending order, or none when `policy` or `giveUp`
    /// (checked between 5 ms slices of a contended wait) gives up.
    package func enter(_ set: ShardLockSet, _ policy: LockWaitPolicy, _ mode: LockMode = .exclusive,
               giveUp: () -> Bool = { false }) -> Bool {
        while true {
            busy.waitWhileEscalating()
            var stopped: Stop?
            for (i, s) in set.shards.enumerated() where !locks[s].tryLock(mode) {
                let acquired = locks[s].wait(mode) {
                    stopped = self.stop(policy, holdingOthers: i > 0, giveUp: giveUp)
                    return stopped != nil
                }
                if acquired { continue }
                for t in set.shards[..<i].reversed() { locks[t].unlock() }
                break
            }
            switch stopped {
            case nil: return true
            case .stepAside: continue
            case .busy, .gaveUp: return false
            }
        }
    }

    /// Takes every lock of `set` if each is free this instant, else none.
    package func tryEnter(_ set: ShardLockSet) -> Bool {
        for (i, s) in set.shards.enumerated() where !locks[s].tryLock(.exclusive) {
            for t in set.shards[..<i].reversed() { locks[t].unlock() }
            return false
        }
        return true
    }

    /// Takes the server-wide script lock (scripts run one at a time), before any shard lock.
    package func enterScript(_ policy: LockWaitPolicy) -> Bool {
        if busy.lock.tryLock(.exclusive) { return true }
        return busy.lock.wait(.exclusive) { self.stop(policy, holdingOthers: false) != nil }
    }

    package func exitScript() { busy.lock.unlock() }

    /// Adds the locks of `missing` to a running script's `held`: without waiting if they
    /// are free; else, when `mayRestart`, not at all (false, `held` as it was); else by
    /// escalating: waiting for them out of order while every lock set in the way steps
    /// aside (rule 1). The caller holds the script lock, so one script escalates at a time.
    package func widen(_ held: inout ShardLockSet, by missing: [Int], mayRestart: Bool) -> Bool {
        var taken: [Int] = []
        for s in missing {
            guard locks[s].tryLock(.exclusive) else { break }
            taken.append(s)
        }
        if taken.count < missing.count && mayRestart {
            for s in taken.reversed() { locks[s].unlock() }
            return false
        }
        for s in taken { held.insert(s) }
        if taken.count < missing.count {
            busy.escalations.add(1, ordering: .relaxed)
            busy.escalating.store(true, ordering: .releasing)
            for s in missing where !held.contains(s) {
                _ = locks[s].wait(.exclusive) { false }
                held.insert(s)
            }
            busy.escalating.store(false, ordering: .releasing)
        }
        return true
    }

    private enum Stop { case busy, stepAside, gaveUp }

    /// Why a contended wait should end without the lock, or nil to keep waiting.
    private func stop(_ policy: LockWaitPolicy, holdingOthers: Bool, giveUp: () -> Bool = { false }) -> Stop? {
        if policy == .refuseWhenBusy && busy.running.load(ordering: .acquiring) != 0 { return .busy }
        if holdingOthers && busy.escalating.load(ordering: .acquiring) { return .stepAside }
        if giveUp() { return .gaveUp }
        return nil
    }

    // MARK: leaving

    /// Lets go of locks that guarded no write (WATCH's bookkeeping, INFO's counts,
    /// MODULE UNLOAD): nothing can have been readied under them.
    @inline(__always) package func exit(_ s: Int) { locks[s].unlock() }
    package func exit(_ set: ShardLockSet) { set.unlock(locks) }

    /// Ends a section that held `set` (rule 3): on a shard thread takes what its writes
    /// made ready from each shard, then lets the locks go, and `finish` follows once the
    /// caller's own bookkeeping is done. Off a shard thread it also hands the ready keys,
    /// and the keyspace events collected in `context`, to the shards that serve them.
    package func leave(_ set: ShardLockSet, context: CommandContext? = nil) {
        guard let shard else { return leaveOffShard(set, context) }
        for s in set.shards { shard.blocking.takeReadyKeys(from: s) }
        set.unlock(locks)
    }

    /// `leave` for a section of one shard's lock.
    @inline(__always)
    func leave(_ s: Int) {
        shard!.blocking.takeReadyKeys(from: s)
        locks[s].unlock()
    }

    /// With no shard lock held: deletes the keys a shared-lock reader found expired,
    /// serves the clients blocked on keys the section readied, publishes its events.
    @inline(__always)
    package func finish() {
        let shard = shard!
        if !shard.context.expiredUnderSharedLock.isEmpty { shard.expireKeysSeenUnderSharedLock() }
        if !shard.blocking.readyQueue.isEmpty { shard.blocking.serveReadyKeys() }
        if shard.hasEventsToPublish { shard.publishKeyspaceEvents() }
    }

    /// Off a shard thread: releases `set`, then hands what the section's writes made ready
    /// to one shard, which serves the keys in the order they were readied (taking each
    /// key's lock in turn), and the keyspace events to shard 0, which publishes them.
    private func leaveOffShard(_ set: ShardLockSet, _ context: CommandContext?) {
        guard let server else { return set.unlock(locks) }
        var handOff: [ReadyQueueItem] = []
        for s in set.shards {
            let ready = server.stores[s].ready
            for r in ready.keys { handOff.append(ReadyQueueItem(shard: s, key: r.key, order: r.order)) }
            ready.keys.removeAll(keepingCapacity: true)
        }
        set.unlock(locks)
        if let first = handOff.min(by: { $0.order < $1.order }) {
            let items = handOff
            server.shards[first.shard].post(.run { shard in
                shard.blocking.readyQueue.append(contentsOf: items)
                shard.blocking.serveReadyKeys()
            })
        }
        guard let context, !context.events.isEmpty else { return }
        let events = context.events
        context.events.removeAll()
        server.shards[0].post(.run { shard in
            shard.context.events += events
            shard.publishKeyspaceEvents()
        })
    }

    // MARK: the batch's kept locks (BatchLocks.swift)

    /// Whether the kept set covers shard `s` for a command needing `wanted` (growing it by
    /// a try-lock if need be); on false the set is released and the caller enters as usual.
    @inline(__always)
    func cover(_ s: Int, _ wanted: LockMode) -> Bool { kept.cover(s, wanted, locks) }

    func cover(_ set: ShardLockSet, _ wanted: LockMode) -> Bool { kept.cover(set, wanted, locks) }

    /// Releases the locks kept from earlier commands of the batch, if any: before any
    /// other path that takes locks, and at the end of every event-loop pass.
    @inline(__always)
    func releaseKept() {
        if !kept.isEmpty { kept.release(locks) }
    }

    /// After `conn`'s data command that held `set` in `mode`: keeps it for the next command
    /// when nothing the command did must reach other threads first, otherwise ends the
    /// section (`leave`; the caller calls `finish`).
    func keepOrLeave(_ set: ShardLockSet, _ mode: LockMode, after conn: Connection) {
        let shard = shard!
        if mode == .exclusive { for s in set.shards { shard.blocking.takeReadyKeys(from: s) } }
        if shard.mayKeepLocks(after: conn) {
            kept.keep(set, mode)
        } else if !kept.isEmpty {
            kept.release(locks)
        } else {
            set.unlock(locks)
        }
    }

    /// The single-lock form of `keepOrLeave`.
    @inline(__always)
    func keepOrLeave(_ s: Int, _ mode: LockMode, after conn: Connection) {
        let shard = shard!
        if mode == .exclusive { shard.blocking.takeReadyKeys(from: s) }
        if shard.mayKeepLocks(after: conn) {
            kept.keep(single: s, mode)
        } else if !kept.isEmpty {
            kept.release(locks)
        } else {
            locks[s].unlock()
        }
    }
}
