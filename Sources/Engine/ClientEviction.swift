import Synchronization
import Keyspace

/// maxmemory-clients: once the buffers of all clients together pass the limit, the
/// clients using the most are closed, largest first, as Redis 7's client eviction does.
/// The limit is a size, or a percentage of maxmemory ("10%"); 0 turns it off. As in Redis,
/// a limit below 128 KB counts as 128 KB, so that a mistaken setting cannot cut everyone
/// off (the client setting it included); over means at or above it, as in Redis.
///
/// What a client uses is what its buffers hold allocated: the query buffer (which a bulk
/// string being read reserves whole in advance, as Redis's does for big arguments), the
/// reply buffer and the one being sent. Each connection remembers the figure it last
/// added to the server's total (`Server.clientMemory`, one atomic, since a connection may
/// move between shard threads), and its shard adds the difference after each input batch,
/// at each tick, and takes it all back when the connection closes.
///
/// Connections belong to their shard's thread, so each shard can only look at and close
/// its own. Each publishes the size of its largest evictable client
/// (`Shard.largestClientMemory`): exactly at each tick and each check over the limit, and
/// at once when a client grows past it. A shard that finds the total over the limit
/// closes its largest client if no other shard has published a larger one; the shard
/// holding a larger one closes it at its own next check (its next input batch or tick).
/// So clients go largest first across the server, within a tick's delay. A closed client's share leaves the total at once, so shards do
/// not close more than needed. Clients with CLIENT NO-EVICT on, and MONITOR clients, are
/// never evicted.
extension Shard {
    /// The limit in bytes now, 0 when off.
    func clientMemoryLimit() -> Int {
        let config = server.config
        let percent = config.maxClientsMemoryPercent.load(ordering: .relaxed)
        let limit = percent > 0 ? config.maxMemory.load(ordering: .relaxed) * percent / 100
                                : config.maxClientsMemory.load(ordering: .relaxed)
        return limit > 0 ? max(limit, Self.smallestClientMemoryLimit) : 0
    }

    static let smallestClientMemoryLimit = 128 * 1024

    /// Brings the server's total up to date with `conn`'s buffers, then evicts if over.
    func noteClientMemory(_ conn: Connection) {
        updateClientMemory(conn)
        evictClientsIfOver()
    }

    /// Adds the change in `conn`'s buffers since it was last counted to the total.
    func updateClientMemory(_ conn: Connection) {
        let now = conn.closing ? 0 : conn.memoryUsage
        guard now != conn.countedMemory else { return }
        server.clientMemory.add(now - conn.countedMemory, ordering: .relaxed)
        conn.countedMemory = now
        // A client that grew past the largest published one is published at once, so
        // that no other shard evicts a smaller client first; decreases wait for the tick.
        if now > largestClientMemory.load(ordering: .relaxed) && conn.mayBeEvicted {
            largestClientMemory.store(now, ordering: .relaxed)
        }
    }

    /// A closing connection's share leaves the total.
    func forgetClientMemory(_ conn: Connection) {
        guard conn.countedMemory != 0 else { return }
        server.clientMemory.subtract(conn.countedMemory, ordering: .relaxed)
        conn.countedMemory = 0
    }

    /// Closes this shard's largest evictable clients while the total is over the limit
    /// and none of another shard's is larger.
    func evictClientsIfOver() {
        let limit = clientMemoryLimit()
        guard limit > 0 else { return }
        while server.clientMemory.load(ordering: .relaxed) >= limit {
            let largest = clients.all.lazy.filter { $0.mayBeEvicted }.max { $0.countedMemory < $1.countedMemory }
            let size = largest?.countedMemory ?? 0
            largestClientMemory.store(size, ordering: .relaxed)
            guard let victim = largest, size > 0 else { return }
            let elsewhere = server.shards.lazy.filter { $0 !== self }.map { $0.largestClientMemory.load(ordering: .relaxed) }.max() ?? 0
            guard size >= elsewhere else { return }
            evictClient(victim)
        }
    }

    private func evictClient(_ conn: Connection) {
        server.log.info("Evicting client: \(conn.infoLine(now: ShardStore.nowMilliseconds(), server: server, shard: index))")
        stats.evictedClients += 1
        forgetClientMemory(conn)
        conn.evicted = true
        overLimit.append(conn)
    }

    /// The tick's pass: buffers shrink between batches, and a shard whose clients sent
    /// nothing still takes its turn at evicting.
    func recountClientMemory() {
        var largest = 0
        for conn in clients.all {
            updateClientMemory(conn)
            if conn.mayBeEvicted { largest = max(largest, conn.countedMemory) }
        }
        largestClientMemory.store(largest, ordering: .relaxed)
        evictClientsIfOver()
    }
}

extension Connection {
    /// Bytes this client's buffers hold allocated.
    var memoryUsage: Int { input.capacity + output.capacity + sending.capacity }

    var mayBeEvicted: Bool { !noEvict && !isMonitor && !closing && !overOutputLimit && !evicted }
}
