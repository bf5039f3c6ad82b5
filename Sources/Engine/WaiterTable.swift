import DequeModule
import Keyspace
import RESP

/// One shard's waiter table: for each key on the shard that blocked clients wait on,
/// those clients in the order they blocked.
///
/// Invariants:
/// - Touched only by a thread holding the shard's lock (`ShardLock`), like the keys.
/// - A queue is never empty: the last removal drops the key, and with it the key's
///   entry in the database's `blockedKeys`, which is what makes writes to the key
///   signal readiness. `blockedKeys[key]` equals the queue's length.
/// - A client appears at most once per key (`BlockRequest.keys` has no repeats).
final class WaiterTable {
    private var queues: [DatabaseKey: Deque<BlockedClient>] = [:]
    private let store: ShardStore

    init(store: ShardStore) { self.store = store }

    var isEmpty: Bool { queues.isEmpty }
    /// Keys with at least one waiter (INFO's total_blocking_keys).
    var keyCount: Int { queues.count }

    func add(_ client: BlockedClient, on key: DatabaseKey) {
        queues[key, default: []].append(client)
        store.databases[key.db].addBlocked(key.key)
    }

    /// Removes `client` from `key`'s queue if it is there.
    func remove(_ client: BlockedClient, from key: DatabaseKey) {
        guard var q = queues[key], let i = q.firstIndex(where: { $0 === client }) else { return }
        q.remove(at: i)
        queues[key] = q.isEmpty ? nil : q
        store.databases[key.db].removeBlocked(key.key)
    }

    /// The clients waiting on `key`, oldest first (a copy: serving drops locks between them).
    func waiters(on key: DatabaseKey) -> [BlockedClient] {
        queues[key].map(Array.init) ?? []
    }

    /// Drops clients whose wait has ended from `key`'s queue.
    func removeStale(on key: DatabaseKey) {
        guard let q = queues[key] else { return }
        let live = q.filter { $0.isWaiting }
        guard live.count != q.count else { return }
        for _ in live.count..<q.count { store.databases[key.db].removeBlocked(key.key) }
        queues[key] = live.isEmpty ? nil : Deque(live)
    }
}
