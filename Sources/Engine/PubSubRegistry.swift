import Keyspace
import RESP
import Synchronization

/// Which shards have subscribers for what: the server-wide index that lets PUBLISH count
/// its receivers and post the message only to the shards that have some.
///
/// Invariants:
/// - For each channel, pattern and shard channel, `counts[shard]` is the number of
///   connections homed on that shard subscribed to it; a name with no subscriber left
///   is removed. Shards change their own counts (under the mutex) when their connections
///   subscribe or unsubscribe, before replying, so a PUBLISH that follows a SUBSCRIBE
///   reply always counts and reaches that subscriber.
/// - The mutex is never held while a shard lock is taken, so holding shard locks (as
///   keyspace notifications do) and then publishing cannot deadlock.
final class PubSubRegistry: Sendable {
    enum Kind: Int, Sendable { case channel = 0, pattern, shardChannel }

    private struct State {
        var names: [[Bytes: [Int]]] = [[:], [:], [:]]
    }

    private let state = Mutex(State())
    private let shardCount: Int

    init(shards: Int) { shardCount = shards }

    func add(_ kind: Kind, _ name: Bytes, shard: Int) {
        state.withLock { s in
            var counts = s.names[kind.rawValue][name] ?? Array(repeating: 0, count: shardCount)
            counts[shard] += 1
            s.names[kind.rawValue][name] = counts
        }
    }

    func remove(_ kind: Kind, _ name: Bytes, shard: Int) {
        state.withLock { s in
            guard var counts = s.names[kind.rawValue][name] else { return }
            counts[shard] -= 1
            s.names[kind.rawValue][name] = counts.allSatisfy { $0 <= 0 } ? nil : counts
        }
    }

    /// Receivers of a message on `channel` and the shards holding them. Pattern
    /// subscribers count once per matching pattern, as in Redis.
    func route(_ channel: Bytes, sharded: Bool) -> (receivers: Int, shards: [Int]) {
        state.withLock { s in
            var perShard = Array(repeating: 0, count: shardCount)
            if let counts = s.names[(sharded ? Kind.shardChannel : .channel).rawValue][channel] {
                for (i, c) in counts.enumerated() { perShard[i] += c }
            }
            if !sharded {
                for (pattern, counts) in s.names[Kind.pattern.rawValue] where Glob.matches(pattern, channel) {
                    for (i, c) in counts.enumerated() { perShard[i] += c }
                }
            }
            let shards = perShard.indices.filter { perShard[$0] > 0 }
            return (perShard.reduce(0, +), shards)
        }
    }

    /// Names of `kind` with subscribers, optionally matching a glob.
    func names(_ kind: Kind, matching pattern: Bytes?) -> [Bytes] {
        state.withLock { s in
            s.names[kind.rawValue].keys.filter { pattern == nil || Glob.matches(pattern!, $0) }
        }
    }

    func subscriberCount(_ kind: Kind, _ name: Bytes) -> Int {
        state.withLock { s in s.names[kind.rawValue][name]?.reduce(0, +) ?? 0 }
    }

    func count(_ kind: Kind) -> Int { state.withLock { $0.names[kind.rawValue].count } }
}
