/// Shard locks kept across the commands of one input batch.
///
/// A pipelining client sends many commands in one read, and they usually touch the same
/// shards: redis-benchmark's ZADD and SADD hit one key, a job queue pushes to one list.
/// Taking and dropping a shard lock around each of those commands is cheap when nobody
/// else wants the lock, but when another shard's thread does, every command becomes a
/// hand-off between threads (a futex wake, often a context switch, and the hot data
/// moving between CPU caches). So a shard keeps the lock set of a plain data command
/// after it ran, and the next command of the same batch whose locks fall inside that set
/// runs without taking anything. Each command is still atomic and isolated as before: the
/// set only grows the critical section to cover several whole commands in request order,
/// which a single-threaded server gives every command anyway.
///
/// Invariants (all on the shard's own thread):
/// - `batchLocks` is empty whenever this thread runs anything but the plain data commands
///   of `processInput`'s loop: it is released before any other code path (scripts,
///   modules, engine commands, queueing into MULTI, closing a connection) and when the
///   loop ends. So no lock is ever taken while one is kept, the ascending-order rule of
///   `ShardLockSet` still holds, and nothing re-enters a lock it already holds.
/// - A command whose work must be seen by other threads before the next one runs (it made
///   keys ready for blocked clients, recorded keyspace events, or blocked its client)
///   releases the set at once, so blocked clients are served between commands exactly as
///   before.
/// - At most `batchLockLimit` commands run under one kept set, so a long pipeline cannot
///   starve the other shards' clients of the keys it holds.
extension Shard {
    static let batchLockLimit = 64

    /// Releases the locks kept from earlier commands of this batch, if any.
    @inline(__always)
    func releaseBatchLocks() {
        if batchLocks.count > 0 { releaseBatchLocksSlow() }
    }

    private func releaseBatchLocksSlow() {
        batchLocks.unlock(locks)
        batchLocks.removeAll()
        batchLockUses = 0
    }

    /// Whether the kept set already covers shard `s`; counts the use.
    @inline(__always)
    func batchLocksCover(_ s: Int) -> Bool {
        batchLocks.count > 0 && useBatchLocks(covering: batchLocks.contains(s))
    }

    /// Whether the kept set already covers every shard of `set`; counts the use.
    func batchLocksCover(_ set: ShardLockSet) -> Bool {
        batchLocks.count > 0 && useBatchLocks(covering: batchLocks.covers(set))
    }

    /// Counts one more command under the kept set, or releases the set when it does not
    /// cover the command or has served its share.
    private func useBatchLocks(covering covered: Bool) -> Bool {
        if covered && batchLockUses < Shard.batchLockLimit {
            batchLockUses += 1
            return true
        }
        releaseBatchLocksSlow()
        return false
    }

    /// After a data command: keeps its locks for the next command of the batch when
    /// nothing waits on their release; otherwise releases them (and the caller serves
    /// ready keys and events as usual).
    func keepOrRelease(_ set: ShardLockSet, _ conn: Connection) {
        if mayKeepLocks(after: conn) {
            if batchLocks.count == 0 { batchLocks.assign(set); batchLockUses = 1 }
        } else if batchLocks.count > 0 {
            releaseBatchLocksSlow()
        } else {
            set.unlock(locks)
        }
    }

    /// The single-lock form of `keepOrRelease`.
    @inline(__always)
    func keepOrRelease(_ s: Int, _ conn: Connection) {
        if mayKeepLocks(after: conn) {
            if batchLocks.count == 0 { batchLocks.assign(single: s); batchLockUses = 1 }
        } else if batchLocks.count > 0 {
            releaseBatchLocksSlow()
        } else {
            locks[s].unlock()
        }
    }

    /// Nothing the command did has to reach other threads before the next one runs.
    @inline(__always)
    private func mayKeepLocks(after conn: Connection) -> Bool {
        readyQueue.isEmpty && context.events.isEmpty && pendingKeyEvents.isEmpty && !conn.suspended && !conn.closing
    }
}
