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
package final class WaiterTable {
    private var queues: [DatabaseKey: Deque<BlockedClient>] = [:]
    /// How many XREADGROUP clients wait on each key.
    private var groupReaders: [DatabaseKey: Int] = [:]
    private let store: ShardStore

    init(store: ShardStore) { self.store = store }

    var isEmpty: Bool { queues.isEmpty }
    /// Keys with at least one waiter (INFO's total_blocking_keys).
    var keyCount: Int { queues.count }
    /// Keys with at least one XREADGROUP waiter, which the key's deletion also wakes
    /// (INFO's total_blocking_keys_on_nokey).
    var groupReaderKeyCount: Int { groupReaders.count }

    package func add(_ client: BlockedClient, on key: DatabaseKey) {
        queues[key, default: []].append(client)
        store.databases[key.db].addBlocked(key.key)
        if case .streamGroupRead = client.operation { groupReaders[key, default: 0] += 1 }
    }

    /// Removes `client` from `key`'s queue if it is there.
    func remove(_ client: BlockedClient, from key: DatabaseKey) {
        guard let q = queues[key], let i = q.firstIndex(where: { $0 === client }) else { return }
        remove(on: key, at: q.distance(from: q.startIndex, to: i))
    }

    /// The `i`th client in `key`'s queue, oldest first; nil past the end.
    func waiter(on key: DatabaseKey, at i: Int) -> BlockedClient? {
        guard let q = queues[key], i < q.count else { return nil }
        return q[q.index(q.startIndex, offsetBy: i)]
    }

    /// Removes the `i`th client of `key`'s queue (a stale one, or one just served).
    func remove(on key: DatabaseKey, at i: Int) {
        guard var q = queues[key], i < q.count else { return }
        let client = q.remove(at: q.index(q.startIndex, offsetBy: i))
        queues[key] = q.isEmpty ? nil : q
        store.databases[key.db].removeBlocked(key.key)
        if case .streamGroupRead = client.operation { groupReaders[key, default: 1] -= 1; if groupReaders[key] == 0 { groupReaders[key] = nil } }
    }

    /// Whether some client waits on `key` in XREADGROUP, which a deleted key also serves
    /// (with an error), so a scan of the key's waiters cannot stop when the key is gone.
    func hasGroupReaders(on key: DatabaseKey) -> Bool { groupReaders[key] != nil }
}
