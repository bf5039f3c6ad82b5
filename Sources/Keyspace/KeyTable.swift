import CIntrinsics
import RESP

/// The key -> entry table of one database on one shard: separate chaining over a
/// power-of-two bucket array, one entry object per key.
///
/// Why not `Dictionary`: SCAN needs a cursor that stays valid while the table grows and
/// shrinks between calls. Walking buckets in reverse-binary order (the scheme Redis uses)
/// guarantees that every key present for the whole scan is returned at least once,
/// whatever resizes happen in between; Dictionary exposes no bucket order to build that
/// on. Chaining also keeps one allocation per key, which the memory budget needs.
///
/// The buckets are a buffer the table allocates and frees itself rather than an Array:
/// reading an Array stored in a class retains its buffer for the duration, and with
/// several shard threads looking keys up in one table that reference count is a cache
/// line they would take turns writing on every lookup.
///
/// Invariant: every entry sits in bucket `hash(entry.key) & mask`, and its `hashTag` is
/// `tag(hash(entry.key))` (the hash's top byte, which the bucket index does not use, so
/// comparing it first skips most keys of a chain that are not the one sought); `count` is
/// the number of entries; `buckets` holds `mask + 1` initialized slots, each owning the head of its
/// chain; the table is resized only inside `insert` and `remove`.
public final class KeyTable {
    private var buckets: UnsafeMutablePointer<Entry?>
    private var mask: Int
    public private(set) var count = 0
    private static let minimumSize = 16

    public init() {
        buckets = KeyTable.allocateBuckets(KeyTable.minimumSize)
        mask = KeyTable.minimumSize - 1
    }

    deinit {
        buckets.deinitialize(count: mask + 1)
        buckets.deallocate()
    }

    private static func allocateBuckets(_ n: Int) -> UnsafeMutablePointer<Entry?> {
        let b = UnsafeMutablePointer<Entry?>.allocate(capacity: n)
        b.initialize(repeating: nil, count: n)
        return b
    }

    private var bucketCount: Int { mask + 1 }

    @inline(__always)
    public static func hash(_ key: Bytes) -> Int { key._rawHashValue(seed: 0) }

    public func find(_ key: Bytes) -> Entry? { find(key, hash: KeyTable.hash(key)) }

    @inline(__always)
    static func tag(_ hash: Int) -> UInt8 { UInt8(truncatingIfNeeded: hash >> 56) }

    /// Walks the chain without retaining the entries it passes: a retain writes to the
    /// entry's cache line, and with several shard threads reading the same table that
    /// write makes the line move between cores on every lookup. The table owns every
    /// entry on the chain for the whole walk (no writer runs while the shard's lock is
    /// held, shared or not), so unretained references are safe; only the entry returned
    /// is retained.
    public func find(_ key: Bytes, hash: Int) -> Entry? {
        let tag = KeyTable.tag(hash)
        var e = chainHead(hash)
        while let u = e {
            if u._withUnsafeGuaranteedRef({ $0.hashTag == tag && $0.key == key }) { return u.takeUnretainedValue() }
            e = u._withUnsafeGuaranteedRef { $0.next.map { Unmanaged.passUnretained($0) } }
        }
        return nil
    }

    /// The first entry of `hash`'s chain, unretained (see `find`).
    @inline(__always)
    private func chainHead(_ hash: Int) -> Unmanaged<Entry>? {
        // The slot's bits, read without the retain a load of `Entry?` may cost.
        UnsafeRawPointer(buckets + (hash & mask)).load(as: UnsafeRawPointer?.self).map { Unmanaged.fromOpaque($0) }
    }

    /// Starts loading the bucket slot of `hash` into the cache, without waiting for it.
    @inline(__always)
    public func prefetchBucket(_ hash: Int) {
        berth_prefetch(UnsafeRawPointer(buckets + (hash & mask)))
    }

    /// Starts loading the first entry of the chain of `hash`, without waiting for it. Reads
    /// the bucket slot, so it pays off once `prefetchBucket` has brought that in.
    @inline(__always)
    public func prefetchChain(_ hash: Int) {
        if let head = chainHead(hash) {
            // An entry spans two cache lines: the key at its start, hash tag and chain link after the value.
            let start = UnsafeRawPointer(head.toOpaque())
            berth_prefetch(start)
            berth_prefetch(start + 64)
        }
    }

    /// Adds a new entry; the key must not be present. A non-zero `expireAt` makes it an
    /// ExpiringEntry with that deadline (the caller queues it for expiry).
    @discardableResult
    public func insert(_ key: Bytes, value: Value, expireAt: Int64 = 0) -> Entry {
        let h = KeyTable.hash(key)
        let entry: Entry
        if expireAt == 0 {
            entry = Entry(key: key, hash: h, value: value)
        } else {
            let expiring = ExpiringEntry(key: key, hash: h, value: value)
            expiring.deadline = expireAt
            entry = expiring
        }
        let b = h & mask
        entry.next = buckets[b]
        buckets[b] = entry
        count += 1
        if count > bucketCount { resize(bucketCount * 2) }
        return entry
    }

    /// Puts `new`, an entry of the same key, where `old` is.
    func replace(_ old: Entry, with new: Entry) {
        let b = KeyTable.hash(old.key) & mask
        new.next = old.next
        old.next = nil
        if buckets[b] === old {
            buckets[b] = new
            return
        }
        var e = buckets[b]
        while let entry = e {
            if entry.next === old {
                entry.next = new
                return
            }
            e = entry.next
        }
        preconditionFailure("replacing an entry that is not in the table")
    }

    @discardableResult
    public func remove(_ key: Bytes) -> Entry? {
        let h = KeyTable.hash(key)
        let b = h & mask
        var prev: Entry? = nil
        var e = buckets[b]
        while let entry = e {
            if entry.hashTag == KeyTable.tag(h) && entry.key == key {
                if let p = prev { p.next = entry.next } else { buckets[b] = entry.next }
                entry.next = nil
                count -= 1
                if bucketCount > KeyTable.minimumSize && count < bucketCount / 8 {
                    resize(max(KeyTable.minimumSize, bucketCount / 4))
                }
                return entry
            }
            prev = entry
            e = entry.next
        }
        return nil
    }

    /// A new table holding every entry, this one left empty: FLUSHALL ASYNC hands the
    /// returned table to LazyFree, which frees it on its own thread.
    public func takeAll() -> KeyTable {
        let taken = KeyTable()
        swap(&buckets, &taken.buckets)
        swap(&mask, &taken.mask)
        swap(&count, &taken.count)
        return taken
    }

    public func removeAll() {
        buckets.deinitialize(count: bucketCount)
        buckets.deallocate()
        buckets = KeyTable.allocateBuckets(KeyTable.minimumSize)
        mask = KeyTable.minimumSize - 1
        count = 0
    }

    private func resize(_ newSize: Int) {
        let fresh = KeyTable.allocateBuckets(newSize)
        let newMask = newSize - 1
        for i in 0..<bucketCount {
            var e = buckets[i]
            buckets[i] = nil
            while let entry = e {
                e = entry.next
                // Entries keep no whole hash (the word is the access clock's), so a
                // resize hashes each key again, as Redis's rehashing does.
                let b = KeyTable.hash(entry.key) & newMask
                entry.next = fresh[b]
                fresh[b] = entry
            }
        }
        buckets.deinitialize(count: bucketCount)
        buckets.deallocate()
        buckets = fresh
        mask = newMask
    }

    /// Visits one bucket's entries and returns the next cursor (0 when the scan is done).
    public func scan(cursor: UInt64, _ visit: (Entry) -> Void) -> UInt64 {
        let m = UInt64(mask)
        var e = buckets[Int(cursor & m)]
        while let entry = e {
            e = entry.next
            visit(entry)
        }
        var v = cursor | ~m
        v = v.bitReversed
        v &+= 1
        return v.bitReversed
    }

    public func forEach(_ body: (Entry) -> Void) {
        for i in 0..<bucketCount {
            var e = buckets[i]
            while let entry = e {
                e = entry.next
                body(entry)
            }
        }
    }

    /// A random number in 0..<n (n > 0).
    static func randomIndex(below n: Int) -> Int {
        let r = UInt64(berth_fast_random()) << 32 | UInt64(berth_fast_random())
        return Int(r % UInt64(n))
    }

    /// Visits up to `count` entries from consecutive buckets starting at a random one, as
    /// Redis's dictGetSomeKeys: cheaper than `count` random picks, and random enough over
    /// many calls. Gives up after a bounded number of empty buckets.
    /// Two passes: the first finds up to `count` non-empty buckets and starts loading
    /// their first entries into the cache, the second visits them, so the cache misses of
    /// the sample overlap instead of following one another (under maxmemory a sample is
    /// taken for every key evicted, and its entries are rarely in the cache). Chains are
    /// walked unretained, as `find` does: eviction samples other shards' tables too, and
    /// a retain writes to an entry's cache line, which the owning shard's thread then has
    /// to fetch back.
    public func sample(_ count: Int, _ visit: (Entry) -> Void) {
        guard self.count > 0, count > 0 else { return }
        withUnsafeTemporaryAllocation(of: Unmanaged<Entry>.self, capacity: count) { heads in
            var i = KeyTable.randomIndex(below: bucketCount)
            var found = 0, steps = 0
            while found < count && steps < count * 20 {
                if let head = chainHead(i) {
                    let start = UnsafeRawPointer(head.toOpaque())
                    berth_prefetch(start)
                    berth_prefetch(start + 64)
                    heads[found] = head
                    found += 1
                }
                i = (i + 1) & mask
                steps += 1
            }
            var visited = 0
            for h in 0..<found {
                var e: Unmanaged<Entry>? = heads[h]
                while let u = e, visited < count {
                    e = u._withUnsafeGuaranteedRef { entry in
                        visit(entry)
                        return entry.next.map { Unmanaged.passUnretained($0) }
                    }
                    visited += 1
                }
            }
        }
    }

    public func randomEntry() -> Entry? {
        guard count > 0 else { return nil }
        while true {
            var e = buckets[Int.random(in: 0...mask)]
            guard e != nil else { continue }
            var chain: [Entry] = []
            while let entry = e { chain.append(entry); e = entry.next }
            return chain.randomElement()
        }
    }

}

extension UInt64 {
    var bitReversed: UInt64 {
        var v = self
        v = ((v >> 1) & 0x5555_5555_5555_5555) | ((v & 0x5555_5555_5555_5555) << 1)
        v = ((v >> 2) & 0x3333_3333_3333_3333) | ((v & 0x3333_3333_3333_3333) << 2)
        v = ((v >> 4) & 0x0F0F_0F0F_0F0F_0F0F) | ((v & 0x0F0F_0F0F_0F0F_0F0F) << 4)
        v = ((v >> 8) & 0x00FF_00FF_00FF_00FF) | ((v & 0x00FF_00FF_00FF_00FF) << 8)
        v = ((v >> 16) & 0x0000_FFFF_0000_FFFF) | ((v & 0x0000_FFFF_0000_FFFF) << 16)
        return (v >> 32) | (v << 32)
    }
}
