#if canImport(Glibc)
import Glibc
#endif

/// The lock over one shard's part of the keyspace. Held for the span of one command
/// (or one EXEC) by whichever thread runs it; several are always taken in ascending
/// shard order (see `ShardLockSet`), so two multi-shard commands can never deadlock.
final class ShardLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    @inline(__always) func lock() { pthread_mutex_lock(mutex) }
    @inline(__always) func unlock() { pthread_mutex_unlock(mutex) }
    func tryLock() -> Bool { pthread_mutex_trylock(mutex) == 0 }

    /// Takes the lock, unless `busy` announces a script while waiting (one past
    /// busy-reply-threshold holds it): then false, without the lock. Waits in slices of a
    /// few milliseconds so that a command queued behind a runaway script can still answer
    /// -BUSY, as Redis's event loop does.
    @inline(__always)
    func lock(unless busy: ScriptBusy) -> Bool {
        if pthread_mutex_trylock(mutex) == 0 { return true }
        return waitForLock(unless: busy)
    }

    private func waitForLock(unless busy: ScriptBusy) -> Bool {
        while true {
            var deadline = timespec()
            clock_gettime(CLOCK_REALTIME, &deadline)
            deadline.tv_nsec += 5_000_000
            if deadline.tv_nsec >= 1_000_000_000 {
                deadline.tv_sec += 1
                deadline.tv_nsec -= 1_000_000_000
            }
            if pthread_mutex_timedlock(mutex, &deadline) == 0 { return true }
            if busy.running.load(ordering: .acquiring) != 0 { return false }
        }
    }
}

/// A sorted, duplicate-free set of shard indices to lock together.
struct ShardLockSet {
    private(set) var shards: [Int] = []

    mutating func insert(_ s: Int) {
        var lo = 0, hi = shards.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if shards[mid] < s { lo = mid + 1 } else { hi = mid }
        }
        if lo == shards.count || shards[lo] != s { shards.insert(s, at: lo) }
    }

    func lock(_ locks: [ShardLock]) { for s in shards { locks[s].lock() } }
    func unlock(_ locks: [ShardLock]) { for s in shards.reversed() { locks[s].unlock() } }

    /// Takes every lock in order, or none when a script turns busy while waiting.
    func lock(_ locks: [ShardLock], unless busy: ScriptBusy) -> Bool {
        for (i, s) in shards.enumerated() where !locks[s].lock(unless: busy) {
            for t in shards[..<i].reversed() { locks[t].unlock() }
            return false
        }
        return true
    }

    /// Takes every lock or, if one is busy, none.
    func tryLock(_ locks: [ShardLock]) -> Bool {
        for (i, s) in shards.enumerated() where !locks[s].tryLock() {
            for t in shards[..<i].reversed() { locks[t].unlock() }
            return false
        }
        return true
    }

    static func all(_ count: Int) -> ShardLockSet {
        var set = ShardLockSet()
        set.shards = Array(0..<count)
        return set
    }
}
