import RESP

/// Choosing which keys to evict on one shard, for the maxmemory policies (the engine's
/// MemoryLimit.swift decides when, how much, and from which shard: the one whose best
/// candidate is best, so that eviction across shards follows the policy as one pool would).
///
/// As in Redis the LRU and LFU policies are approximations: each round samples
/// `maxmemory-samples` keys of every database on the shard (all keys, or only those with a
/// TTL for the volatile policies) into a pool of the 16 best candidates seen so far,
/// ordered by idle time or by how rarely they are used, and evicts the best that still
/// exists. The pool lives across rounds, so a good candidate found once is not forgotten
/// because the next sample missed it; larger samples approach true LRU at a higher cost.
/// `volatile-ttl` needs no sampling: the expiry heap knows exactly which key expires
/// soonest. The random policies pick one key at random.
public struct EvictionPool {
    struct Candidate {
        let score: UInt64
        let db: Int
        let key: Bytes
    }
    /// Ascending by score: the best victim is last.
    private var candidates: [Candidate] = []
    static let size = 16

    public init() {}

    mutating func offer(score: UInt64, db: Int, key: Bytes) {
        // Samples of neighbouring buckets meet the same keys again: a key twice in the pool
        // would leave a stale copy behind once taken, crowding out live candidates.
        if let i = candidates.firstIndex(where: { $0.db == db && $0.key == key }) {
            guard candidates[i].score != score else { return }
            candidates.remove(at: i)
        }
        if candidates.count == Self.size {
            guard score > candidates[0].score else { return }
            candidates.removeFirst()
        }
        var i = candidates.count
        while i > 0 && candidates[i - 1].score > score { i -= 1 }
        candidates.insert(Candidate(score: score, db: db, key: key), at: i)
    }

    mutating func popBest() -> Candidate? { candidates.popLast() }

    func peekBest() -> Candidate? { candidates.last }

    var isEmpty: Bool { candidates.isEmpty }

    public mutating func removeAll() { candidates.removeAll(keepingCapacity: true) }
}

/// Which keys a policy may evict, and how it picks them.
public enum EvictionPolicy: UInt8, Sendable {
    case noEviction, allKeysLRU, volatileLRU, allKeysLFU, volatileLFU, allKeysRandom, volatileRandom, volatileTTL

    public init?(name: String) {
        switch name {
        case "noeviction": self = .noEviction
        case "allkeys-lru": self = .allKeysLRU
        case "volatile-lru": self = .volatileLRU
        case "allkeys-lfu": self = .allKeysLFU
        case "volatile-lfu": self = .volatileLFU
        case "allkeys-random": self = .allKeysRandom
        case "volatile-random": self = .volatileRandom
        case "volatile-ttl": self = .volatileTTL
        default: return nil
        }
    }

    public var onlyVolatile: Bool { self == .volatileLRU || self == .volatileLFU || self == .volatileRandom || self == .volatileTTL }
    public var countsFrequency: Bool { self == .allKeysLFU || self == .volatileLFU }
}

extension ShardStore {
    /// The score of the key this shard would evict next under `policy` (higher: a better
    /// victim; comparable between shards), after adding a fresh sample to the pool; nil
    /// when it holds no key the policy may evict. Caller holds the shard's lock.
    public func bestEvictionScore(_ policy: EvictionPolicy, samples: Int) -> UInt64? {
        switch policy {
        case .noEviction:
            return nil
        case .volatileTTL:
            return soonestExpiring().map { UInt64.max - UInt64(max($0.1.expireAt, 0)) }
        case .allKeysRandom, .volatileRandom:
            // Random, weighted toward the shards holding more of the keys.
            let keys = databases.reduce(0) { $0 + (policy == .volatileRandom ? $1.volatileCount : $1.count) }
            return keys == 0 ? nil : UInt64(KeyTable.randomIndex(below: keys + 1)) + 1
        case .allKeysLRU, .volatileLRU, .allKeysLFU, .volatileLFU:
            refillEvictionPool(volatile: policy.onlyVolatile, samples: samples)
            return bestCandidate(volatile: policy.onlyVolatile)?.score
        }
    }

    /// The key to evict next, if its score is at least `minimum` (the runner-up shard's
    /// best), taken out of the pool. Caller holds the shard's lock exclusively.
    public func takeEvictionVictim(_ policy: EvictionPolicy, samples: Int, minimum: UInt64) -> (Database, Entry)? {
        switch policy {
        case .noEviction:
            return nil
        case .volatileTTL:
            guard let (db, e) = soonestExpiring(), UInt64.max - UInt64(max(e.expireAt, 0)) >= minimum else { return nil }
            return (db, e)
        case .allKeysRandom, .volatileRandom:
            let volatile = policy == .volatileRandom
            let candidates = databases.filter { volatile ? $0.volatileCount > 0 : $0.count > 0 }
            guard let db = candidates.randomElement() else { return nil }
            return (volatile ? db.randomVolatileEntry() : db.table.randomEntry()).map { (db, $0) }
        case .allKeysLRU, .volatileLRU, .allKeysLFU, .volatileLFU:
            let volatile = policy.onlyVolatile
            // A fresh sample for every victim, as Redis populates its pool before each.
            refillEvictionPool(volatile: volatile, samples: samples)
            guard let best = bestCandidate(volatile: volatile), best.score >= minimum else { return nil }
            _ = evictionPool.popBest()
            return (best.db, best.entry)
        }
    }

    private func refillEvictionPool(volatile: Bool, samples: Int) {
        for (i, db) in databases.enumerated() where volatile ? db.volatileCount > 0 : db.count > 0 {
            db.sample(samples, volatileOnly: volatile) { evictionPool.offer(score: $0.evictionScore, db: i, key: $0.key) }
        }
    }

    /// The pool's best candidate that still exists and still scores what it did when
    /// sampled: a key used since goes back into the pool at its new score (Redis keeps the
    /// stale score; a key read constantly would then be evicted for having been idle once).
    private func bestCandidate(volatile: Bool) -> (db: Database, entry: Entry, score: UInt64)? {
        while let c = evictionPool.peekBest() {
            guard c.db < databases.count, let e = databases[c.db].table.find(c.key), !volatile || e.expireAt != 0 else {
                _ = evictionPool.popBest()
                continue
            }
            let now = e.evictionScore
            if now >= c.score { return (databases[c.db], e, c.score) }
            _ = evictionPool.popBest()
            evictionPool.offer(score: now, db: c.db, key: c.key)
            if evictionPool.peekBest()?.key == c.key { return (databases[c.db], e, now) }
        }
        return nil
    }

    /// The key whose TTL ends first on this shard.
    private func soonestExpiring() -> (Database, Entry)? {
        databases.lazy.compactMap { db in db.soonestExpiring().map { (db, $0) } }.min { $0.1.expireAt < $1.1.expireAt }
    }
}

extension Database {
    /// Removes a key to make room: counted, announced (`evicted`), and a DEL in the effect
    /// stream, so the append-only file and replicas delete it too.
    public func evict(_ e: Entry) {
        removeEntry(e, lazily: LazyFree.onEviction.load(ordering: .relaxed))
        evictedTotal += 1
        if keyEvents.isTracking { keyEvents.record(.evicted, DatabaseKey(db: index, key: e.key)) }
        if effects.isEnabled { effects.append(Effect(db: index, [Bytes("DEL"), e.key])) }
    }

    /// Up to `count` keys, from the table or from the keys with a TTL.
    func sample(_ count: Int, volatileOnly: Bool, _ visit: (Entry) -> Void) {
        guard volatileOnly else { table.sample(count, visit); return }
        // Evicted and deleted keys leave their heap items behind until they come due;
        // past a third of live ones, sampling would mostly miss.
        if expiries.count > volatileCount + volatileCount / 2 + 64 { rebuildExpiries() }
        let items = expiries.unordered
        guard !items.isEmpty else { return }
        var found = 0
        for _ in 0..<count * 10 where found < count {
            let item = items[Int(KeyTable.randomIndex(below: items.count))]
            if let e = table.find(item.key), e.expireAt == item.deadline {
                visit(e)
                found += 1
            }
        }
        if found == 0 && volatileCount > 0 {
            // Every pick met a stale item (with few keys with a TTL, the slack before a
            // rebuild is most of the heap): rebuilt, every item is live.
            rebuildExpiries()
            for item in expiries.unordered.prefix(count) {
                if let e = table.find(item.key), e.expireAt == item.deadline { visit(e) }
            }
        }
    }

    /// The key whose TTL ends first; stale heap items met on the way are dropped.
    func soonestExpiring() -> Entry? {
        while let top = expiries.min {
            if let e = table.find(top.key), e.expireAt == top.deadline { return e }
            _ = expiries.popMin()
        }
        return nil
    }

    func randomVolatileEntry() -> Entry? {
        var found: Entry? = nil
        sample(1, volatileOnly: true) { found = $0 }
        return found
    }
}
