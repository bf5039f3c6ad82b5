import RESP

/// Key prefetch across a pipelined batch.
///
/// A GET, SET or INCR on a random key spends most of its time waiting for memory: the
/// bucket slot, then the chain's first entry, each a cache miss, one after the other.
/// A pipeline of such commands repeats that wait per command. But the keys of the
/// commands still waiting in the connection's input are known already, so the shard
/// starts their misses early, as Valkey does for its batches: once the batch keeps shard
/// locks (BatchLocks.swift), it scans the next `depth` commands' raw bytes, takes each
/// one's first argument as its key (the key of every single-key command; for any other
/// command a useless hint, never a wrong result), and prefetches the bucket slots, then the
/// chains, of those keys that live on a locked shard. By the time their commands run,
/// the lookups hit the cache.
///
/// - Only tables of shards whose locks the batch holds are read, and prefetching reads
///   nothing else of them; a prefetch is a hint that never faults, so a later command
///   of the batch that resizes a table only makes some hints useless.
/// - The commands are scanned, not parsed: parsing ahead would allocate their argument
///   arrays. The scan gives up at anything unusual (an inline command, an incomplete or
///   malformed one, a long key); the parser then deals with it as always.
/// - A window is scanned once; the next scan comes when the parser has passed its end, or
///   when the batch has locked more shards since (their keys were skipped).
/// - A client pipelining at one key (a queue's LPUSH, a leaderboard's ZADD) has nothing
///   to prefetch: when a scan of at least `depth / 2` commands finds at most one key, the
///   connection's next `quietBatches` batches are not scanned.
struct PrefetchWindow {
    static let depth = 16
    static let quietBatches = 8
    /// Input offset just past the last command scanned.
    var end = 0
    /// How many shards the batch had locked at that scan.
    var lockedShards = 0
}

extension Shard {
    /// Prefetches the keys of the commands after the one about to run (see PrefetchWindow).
    @inline(__always)
    func prefetchAhead(_ conn: Connection, _ window: inout PrefetchWindow) {
        let locked = section.kept.held.count
        guard locked > 0 else { return }
        if conn.input.readerIndex < window.end && locked == window.lockedShards { return }
        if window.end == 0 && conn.prefetchSkips > 0 {
            // The batch's first scan: this whole batch goes unscanned.
            conn.prefetchSkips -= 1
            window.end = Int.max
            window.lockedShards = locked
            return
        }
        scanAndPrefetch(conn, &window)
    }

    private func scanAndPrefetch(_ conn: Connection, _ window: inout PrefetchWindow) {
        let input = conn.input
        var at = input.readerIndex
        var previous: Bytes? = nil
        var scanned = 0, keys = 0
        for _ in 0..<PrefetchWindow.depth {
            guard let (key, next) = RawCommandScan.firstArgument(input, from: at) else { break }
            at = next
            scanned += 1
            // Pipelines often repeat one key (a queue's list): hash it once.
            guard let key, key != previous else { continue }
            previous = key
            keys += 1
            let s = slots.shard(of: key)
            if section.kept.held.contains(s) { context.startPrefetch(key, shard: s, database: conn.db) }
        }
        context.finishPrefetch()
        if scanned >= PrefetchWindow.depth / 2 && keys <= 1 { conn.prefetchSkips = PrefetchWindow.quietBatches }
        window.end = max(at, input.readerIndex + 1)
        window.lockedShards = section.kept.held.count
    }
}
