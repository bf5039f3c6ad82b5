import CAllocator
import Commands
import Keyspace
#if canImport(Glibc)
import Glibc
#endif

/// Keeping the server under `maxmemory`, as Redis's evict.c does.
///
/// Used memory is what the allocator has handed out and not taken back (CAllocator
/// counts every malloc and free), so it includes client buffers and everything else, as
/// Redis's `used_memory` does. Before each command, while a limit is set, the shard
/// running it compares that figure with the limit; when over, it evicts keys until under.
/// Each round asks every shard, under that shard's lock alone, for the score of its best
/// candidate (Keyspace's Eviction.swift), then evicts from the best shard while its
/// candidates beat the runner-up's: across shards, the keys go in the order one pool over
/// the whole keyspace would take them. One shard evicts at a time (the `evicting` flag;
/// the others serve on); no lock is held across shards. Well under the limit, the sum of
/// the threads' allocation counters is read once per input batch; near it, before each
/// command. Keys are chosen by the policy (Keyspace's Eviction.swift) and removed as
/// deleted ones are, so blocked clients waiting on them see a deleted key, WATCHers
/// their transaction fail, the effect stream a DEL, subscribers an `evicted` event;
/// under lazyfree-lazy-eviction their values are freed on the lazy-free thread.
///
/// Once over the limit, eviction goes on to 1/64 of the limit below it (at most 4 MB), so
/// that a stream of writes pays one round per many keys. It stops after a time budget
/// that `maxmemory-eviction-tenacity` sets (500 µs at the default 10, as Redis) and the
/// shard's tick carries on; meanwhile commands run.
/// A command is refused with -OOM only when the server is over the limit and eviction
/// could free nothing (policy `noeviction`, or no key the policy may take), and only if
/// it may grow memory (`denyoom`), or is queued in a transaction, or is an EXEC of such
/// commands: reads and deletes keep working. Scripts follow Redis: a script with flags
/// (and every function) is refused at its start unless `allow-oom` or `no-writes`; a
/// script without flags is refused at its first `denyoom` call, if it has not written yet.
/// Nothing is evicted or refused while loading, during CLIENT PAUSE (which must not
/// write), or inside a command of a module that yields.
extension Shard {
    enum EvictionOutcome { case wellUnderLimit, underLimit, running, failed }

    static let outOfMemory = "OOM command not allowed when used memory > 'maxmemory'."

    /// Before a command while maxmemory is set: makes room, and answers whether the
    /// command must be refused (Redis's processCommand, performEvictions).
    func refusesForMemory(_ spec: CommandSpec, _ conn: Connection) -> Bool {
        // Once per batch read from a socket: summing the threads' allocation counters
        // reads cache lines the other shards' threads keep writing, which a pipeline of
        // small commands would pay for on each one.
        // Only while far enough under the limit: near it, each command makes room for
        // itself, so that eviction keeps pace with writes however large the batch.
        if !memoryCheckedInBatch {
            let outcome = evictToLimit()
            memoryCheckedInBatch = outcome == .wellUnderLimit
            outOfMemoryBeforeCommand = outcome == .failed
        }
        guard outOfMemoryBeforeCommand else { return false }
        if spec.flags.contains(.denyOOM) { return true }
        if let txn = conn.transaction {
            if spec.name == "exec" { return txn.queue.contains { $0.0.flags.contains(.denyOOM) } }
            return !["discard", "quit", "reset"].contains(spec.name)
        }
        return false
    }

    /// Bytes used that count toward the limit.
    static func usedMemory() -> Int { Int(berth_allocated_bytes()) }

    /// Evicts until used memory is under the target below the limit, the time budget is spent, or no
    /// shard has a key the policy may take. Holds no lock when called or on return.
    @discardableResult
    func evictToLimit() -> EvictionOutcome {
        let limit = server.config.maxMemory.load(ordering: .relaxed)
        let used = Self.usedMemory()
        guard limit > 0, used > limit else { return used < limit - limit / 16 ? .wellUnderLimit : .underLimit }
        guard !server.loading.load(ordering: .relaxed), !pause.isActive, !server.moduleYieldGate.sectionHeld.load(ordering: .relaxed) else {
            return .underLimit
        }
        let policy = EvictionPolicy(rawValue: server.config.evictionPolicy.load(ordering: .relaxed)) ?? .noEviction
        guard policy != .noEviction else { return .failed }
        // One shard evicts at a time: two would contend for the same shards' locks to
        // take the same excess. The others go on serving meanwhile, as Redis serves while
        // its eviction runs past its time budget.
        guard server.evicting.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            return .running
        }
        defer { server.evicting.store(false, ordering: .releasing) }
        let samples = server.config.evictionSamples.load(ordering: .relaxed)
        // Once over, a little more than the excess goes (1/64 of the limit, at most 4 MB),
        // so that a stream of writes triggers one round per many keys rather than a
        // round, with its visit to every shard, per key.
        let target = limit - min(limit / 64, 4 << 20)
        let started = monotonicMicroseconds(), budget = Self.evictionBudget(server.config.evictionTenacity.load(ordering: .relaxed))
        section.releaseKept()
        var evicted = 0
        // Failed only when over the limit with no key to take: other shards free and
        // allocate meanwhile, so the figure alone may cross the limit either way.
        var outcome = EvictionOutcome.underLimit
        var emptyRounds = 0
        while Self.usedMemory() > target {
            guard let (shard, runnerUp) = bestShardToEvict(policy, samples: samples),
                  section.enter(shard, .refuseWhenBusy) else {
                outcome = Self.usedMemory() <= limit ? .underLimit : evicted > 0 ? .running : .failed
                break
            }
            let store = stores[shard]
            var batch = 0, underLimit = false
            // The first victim regardless of the runner-up (its score may have dropped
            // since it was asked, when the key was used meanwhile).
            while batch < 64 {
                if Self.usedMemory() <= target { underLimit = true; break }
                guard let (db, entry) = store.takeEvictionVictim(policy, samples: samples, minimum: batch == 0 ? 0 : runnerUp) else { break }
                let key = entry.key
                db.evict(entry)
                if server.watchedKeys.load(ordering: .relaxed) > 0 { touchWatchers(of: [key], db: db.index) }
                batch += 1
            }
            section.leave(shard)
            section.finish()
            evicted += batch
            if underLimit { break }
            // Victims freed lazily still count until the lazy-free thread drops them:
            // rather than evict more meanwhile, the round ends and the next command or
            // tick goes on (Redis's eviction waits for its lazy-free thread the same way).
            if LazyFree.onEviction.load(ordering: .relaxed) && LazyFree.shared.pending > 0 {
                outcome = .running
                break
            }
            // The shard's candidates went between asking and taking (another shard's
            // thread evicted them): ask again, a few times.
            emptyRounds = batch == 0 ? emptyRounds + 1 : 0
            if emptyRounds == 3 {
                outcome = Self.usedMemory() <= limit ? .underLimit : evicted > 0 ? .running : .failed
                break
            }
            if monotonicMicroseconds() - started > budget {
                if Self.usedMemory() > limit { outcome = .running }
                break
            }
        }
        return outcome
    }

    /// The shard whose next victim is the best under `policy`, and the best score among
    /// the others (its victims are taken while they beat that one): one pool's choice
    /// across shards, each visited under its own lock alone.
    private func bestShardToEvict(_ policy: EvictionPolicy, samples: Int) -> (shard: Int, runnerUp: UInt64)? {
        var best: (shard: Int, score: UInt64)? = nil
        var runnerUp: UInt64 = 0
        for step in 0..<stores.count {
            let s = (index + step) % stores.count
            guard section.enter(s, .refuseWhenBusy) else { continue }
            let score = stores[s].bestEvictionScore(policy, samples: samples)
            section.leave(s)
            guard let score else { continue }
            if let b = best, b.score >= score {
                runnerUp = max(runnerUp, score)
            } else {
                if let b = best { runnerUp = max(runnerUp, b.score) }
                best = (s, score)
            }
        }
        section.finish()
        return best.map { ($0.shard, runnerUp) }
    }

    /// Microseconds one round of eviction may take (Redis's evictionTimeLimitUs):
    /// 50 µs per step up to tenacity 10, then growing 15% per step, unlimited at 100.
    static func evictionBudget(_ tenacity: Int) -> Int {
        if tenacity <= 10 { return 50 * max(tenacity, 1) }
        if tenacity < 100 { return Int(500.0 * pow(1.15, Double(tenacity - 10))) }
        return Int.max
    }
}
