import Commands
import DequeModule
import HeapModule
import Keyspace
import RESP

// Blocked clients, the engine half: how a client blocks, how it is woken, and how every
// other way out of a block (timeout, CLIENT UNBLOCK, disconnect, CLIENT KILL) ends it.
//
// Blocking. A blocking command runs like any data command, on its connection's home
// shard under the locks of the shards owning its keys. When it finds nothing, it files a
// `BlockRequest`; still under those locks, `block` creates a `BlockedClient` and adds it
// to the waiter table of every shard owning one of its keys, so no write can come between
// "found nothing" and "waiting". The connection is suspended: its later input waits.
//
// Readiness. A write that creates, replaces or deletes a key somebody waits on (or
// appends to a waited stream) records the key in its shard's `ReadyKeys`. After the
// command (after EXEC for a transaction, never in the middle), the shard that ran it
// collects those keys while it still holds the locks, releases them, and serves each key:
// `serveWaiters` takes the key's lock (and a move destination's, in ascending order),
// walks the key's waiters oldest first and, for each that the key can serve now, claims
// it with one CAS and only then pops for it. The reply bytes travel to the client's home
// shard (its inbox, or directly when that is this shard). A served client's other keys
// still list it; whoever meets it there skips it, and its home shard removes it.
//
// Every other outcome happens on the home shard, which owns the connection: the timer
// heap fires deadlines, CLIENT UNBLOCK arrives through `gather`, a closing socket or
// CLIENT KILL calls `abandonBlocked`. Each tries the same CAS; the loser does nothing.
// If CLIENT KILL loses to a reply already on its way, the connection closes right after
// that reply is written, so the element it carries reaches the client.
//
// The home shard finishes every outcome in `finishBlocked`: it removes the client from
// all waiter tables, writes the reply, and queues the connection to resume its input
// once the shard is back at the top of its loop (never inside another command).
/// One shard's side of blocking (see the top of this file): the keys its sections readied,
/// waiting to be served; the deadlines of the clients homed here; the connections whose
/// wait ended, waiting to run the input queued behind it.
///
/// Invariants: used only on its shard's thread. `readyQueue` is filled while the section
/// that readied the keys still holds their locks (`takeReadyKeys`) and served with no
/// lock held (`serveReadyKeys`); `timers` holds only clients homed here; a connection is
/// in `resumeQueue` once its outcome was written, and resumes at the top of the loop.
package final class BlockingService {
    private unowned(unsafe) let shard: Shard
    private unowned(unsafe) let server: Server
    /// Keys readied by this thread's sections, in the order they were readied.
    package var readyQueue = Deque<ReadyQueueItem>()
    /// Deadlines of the clients blocked on this shard.
    package var timers = BlockTimers()
    /// Connections whose block ended; their input resumes at the top of the loop.
    var resumeQueue: [Connection] = []

    init(shard: Shard) {
        self.shard = shard
        server = shard.server
    }

    /// Registers the client filed by the command that just ran. Caller holds its keys' locks.
    func block(_ conn: Connection, _ request: BlockRequest) {
        let keys = request.keys.map { (shard: server.slots.shard(of: $0), key: DatabaseKey(db: conn.db, key: $0)) }
        let discardsReply = conn.repliesOff || conn.skipReplies > 0
        // A serving shard may write the reply itself unless something else could reach
        // the client meanwhile (pushes to a subscriber) or the reply is not a plain one.
        // Nor while replies wait for the append-only file's fsync (DurabilityGate).
        let direct = !discardsReply && !conn.isSubscribed && !conn.isMonitor && request.operation.engineWait == nil
            && !server.durability.holding.load(ordering: .relaxed)
        let client = BlockedClient(
            connectionID: conn.id, home: shard.index, db: conn.db, keys: keys, operation: request.operation,
            protocolVersion: conn.protocolVersion, deadline: request.deadline, discardsReply: discardsReply,
            directReply: direct ? DirectReply(descriptor: conn.fd) : nil)
        for (s, key) in keys { server.shards[s].waiters.add(client, on: key) }
        conn.blocked = client
        conn.suspended = true
        conn.park()
        if conn.output.isEmpty && !conn.sendInFlight { client.directReply?.open() }
        server.blockedClients.add(1, ordering: .relaxed)
        if request.deadline > 0 { timers.add(client) }
    }

    /// Moves the ready keys shard `s` recorded into this thread's queue. Caller holds `s`'s lock.
    @inline(__always)
    func takeReadyKeys(from s: Int) {
        // Unretained: the stores live as long as the server, and this runs after every write.
        let store = shard.stores.withUnsafeBufferPointer { Unmanaged.passUnretained($0[s]) }
        if store._withUnsafeGuaranteedRef({ $0.hasNewsForEngine }) { takeReadyKeysSlow(from: s) }
    }

    private func takeReadyKeysSlow(from s: Int) {
        let store = shard.stores[s]
        let log = store.keyEvents
        if !log.entries.isEmpty {
            for (kind, key) in log.entries {
                shard.pendingKeyEvents.append(KeyspaceEvent(db: key.db, key: key.key, event: kind.eventName))
            }
            log.entries.removeAll(keepingCapacity: true)
        }
        let ready = store.ready
        guard !ready.keys.isEmpty else { return }
        for r in ready.keys { readyQueue.append(ReadyQueueItem(shard: s, key: r.key, order: r.order)) }
        ready.keys.removeAll(keepingCapacity: true)
    }

    /// Serves the waiters of every collected ready key, in the order the keys were readied
    /// (across shards: a transaction's pushes to keys of several shards serve a client
    /// blocked on them from the first). Call with no shard lock held.
    package func serveReadyKeys() {
        if readyQueue.count > 1 && !zip(readyQueue, readyQueue.dropFirst()).allSatisfy({ $0.order < $1.order }) {
            readyQueue = Deque(readyQueue.sorted { $0.order < $1.order })
        }
        while let item = readyQueue.popFirst() {
            guard serveWaiters(onShard: item.shard, item.key) else {
                // A busy script holds the locks: keep the key for the next tick.
                readyQueue.prepend(item)
                return
            }
        }
    }

    /// Serves `key`'s waiters oldest first while the key can serve them. The common
    /// case (a queue with many idle workers) costs O(1) per push: the scan stops as soon
    /// as the key is gone, unless an XREADGROUP client must hear that it is.
    private func serveWaiters(onShard s: Int, _ key: DatabaseKey) -> Bool {
        var held = ShardLockSet()
        held.insert(s)
        guard shard.section.enter(held, .refuseWhenBusy) else { return false }
        let table = server.shards[s].waiters
        var served: [(BlockedClient, [UInt8])] = []
        let ctx = shard.context
        ctx.now = ShardStore.nowMilliseconds()
        ctx.keyShard = nil
        var i = 0
        while let client = table.waiter(on: key, at: i) {
            guard client.isWaiting else {
                table.remove(on: key, at: i)
                continue
            }
            if let wait = client.operation.engineWait {
                wait.keyReadied(client, key: key.key, serving: shard)
                i += 1
                continue
            }
            if let destination = client.operation.destination {
                let d = server.slots.shard(of: destination)
                if !held.shards.contains(d) {
                    // Locks go in ascending order: let go, take both, and start the scan
                    // again, since the queue may have changed meanwhile.
                    shard.section.leave(held)
                    held.insert(d)
                    guard shard.section.enter(held, .refuseWhenBusy) else {
                        for (client, bytes) in served { deliver(client, .reply(bytes)) }
                        return false
                    }
                    i = 0
                    continue
                }
            }
            let out = IOBuffer(capacity: 128)
            ctx.reply = ReplyWriter(buffer: out, protocolVersion: client.protocolVersion)
            ctx.dbIndex = client.db
            guard Blocking.isReady(ctx, key: key.key, client.operation) else {
                if ctx.lookup(key.key) == nil && !table.hasGroupReaders(on: key) { break }
                i += 1
                continue
            }
            guard client.claim(.served) else { continue }
            table.remove(on: key, at: i)
            let dirtyBefore = ctx.dirty
            do {
                try Blocking.serve(ctx, key: key.key, client.operation)
            } catch {
                ctx.reply.error(error.message)
            }
            if ctx.dirty != dirtyBefore && server.watchedKeys.load(ordering: .relaxed) > 0 {
                var written = [key.key]
                if let d = client.operation.destination { written.append(d) }
                shard.touchWatchers(of: written, db: client.db)
            }
            served.append((client, out.readableArray))
        }
        shard.section.leave(held)
        for (client, bytes) in served { deliver(client, .reply(bytes)) }
        return true
    }

    /// Hands an outcome to the client's home shard. A reply is first written to the
    /// client's socket from here when its home opened the door (DirectReply.swift): the
    /// client has it without waiting for its home thread to be scheduled, or for this
    /// thread's next ring submission when it is home.
    func deliver(_ client: BlockedClient, _ outcome: BlockOutcome) {
        var outcome = outcome
        if case .reply(let bytes) = outcome, let door = client.directReply, !server.durability.holding.load(ordering: .relaxed),
           let count = door.write(bytes) {
            outcome = .written(count: count, rest: Array(bytes[count...]), isError: bytes.first == UInt8(ascii: "-"))
        }
        if client.home == shard.index {
            finishBlocked(client, outcome)
        } else {
            server.shards[client.home].post(.run { [outcome] in $0.blocking.finishBlocked(client, outcome) })
        }
    }

    /// Ends a wait whose outcome was claimed: home shard only, no shard lock held.
    package func finishBlocked(_ client: BlockedClient, _ outcome: BlockOutcome) {
        server.blockedClients.subtract(1, ordering: .relaxed)
        if client.deadline > 0 { timers.finished() }
        removeFromWaiterTables(client)
        if let completion = client.completion {
            completion(outcomeBytes(client, outcome))
            return
        }
        let wait = client.operation.engineWait
        defer { wait?.finished(on: shard) }
        guard let conn = shard.clients[client.connectionID], conn.blocked === client else { return }
        conn.blocked = nil
        conn.suspended = false
        conn.commandsRun += 1
        if let (args, microseconds) = conn.blockedCommand {
            conn.blockedCommand = nil
            shard.reportUnblocked(conn, args, microseconds: microseconds, failed: outcome.isError)
        }
        if !client.discardsReply {
            switch outcome {
            case .reply(let bytes):
                bytes.withUnsafeBytes { conn.output.append($0) }
            case .timeout:
                if let bytes = wait?.timeoutReply(on: shard, protocolVersion: conn.protocolVersion) {
                    bytes.withUnsafeBytes { conn.output.append($0) }
                } else {
                    client.operation.writeTimeoutReply(ReplyWriter(buffer: conn.output, protocolVersion: conn.protocolVersion))
                }
            case .error(let message):
                ReplyWriter(buffer: conn.output, protocolVersion: conn.protocolVersion).error(message)
            case .written(let count, let rest, _):
                conn.netOutputBytes += count
                rest.withUnsafeBytes { conn.output.append($0) }
            }
        }
        // Out to the socket now: a CLIENT KILL handled before the input resumes would
        // otherwise drop the reply, and with it a popped element.
        shard.flushReplies(conn)
        resumeQueue.append(conn)
    }

    /// An outcome as the reply bytes the waiting command would have given.
    func outcomeBytes(_ client: BlockedClient, _ outcome: BlockOutcome) -> [UInt8] {
        switch outcome {
        case .reply(let bytes): return bytes
        case .timeout:
            let out = IOBuffer(capacity: 16)
            client.operation.writeTimeoutReply(ReplyWriter(buffer: out, protocolVersion: client.protocolVersion))
            return out.readableArray
        case .error(let message): return Array("-\(message)\r\n".utf8)
        case .written(_, let rest, _): return rest
        }
    }

    private func removeFromWaiterTables(_ client: BlockedClient) {
        for (s, key) in client.keys {
            // Behind a busy script the entry is left: a finished client is a stale waiter,
            // skipped and dropped whenever its key is served.
            guard shard.section.enter(s, .refuseWhenBusy) else { continue }
            server.shards[s].waiters.remove(client, from: key)
            shard.section.exit(s)
        }
    }

    /// Ends `conn`'s wait because the connection is going away. False when the client
    /// was already served and its reply is on the way.
    func abandonBlocked(_ conn: Connection) -> Bool {
        guard let client = conn.blocked else { return true }
        guard client.claim(.disconnected) else { return false }
        conn.blocked = nil
        client.operation.engineWait?.clientDisconnected(on: shard)
        finishBlocked(client, .timeout)
        return true
    }

    /// CLIENT UNBLOCK on this shard: true if `id` is here, blocked, and this claim won.
    func unblock(clientID id: Int, withError: Bool) -> Bool {
        guard let client = shard.clients[id]?.blocked else { return false }
        if let wait = client.operation.engineWait, !wait.mayBeUnblocked { return false }
        guard client.claim(.unblocked) else { return false }
        finishBlocked(client, withError ? .error("UNBLOCKED client unblocked via CLIENT UNBLOCK") : .timeout)
        return true
    }

    /// Fires the deadlines that have passed.
    func fireTimeouts(now: Int64) {
        while let client = timers.popDue(now: now) {
            if client.claim(.timedOut) { finishBlocked(client, .timeout) }
        }
    }
}

/// A shard's blocked-client deadlines, soonest first.
///
/// Invariants: home shard's thread only. Entries are not removed when a client is served
/// or unblocked; `popDue` skips them, and the heap is rebuilt when such stale entries
/// outnumber the live ones, so a stream of served clients with long timeouts cannot grow
/// it without bound. `live` counts entries whose client has not yet been finished.
package struct BlockTimers {
    private struct Entry: Comparable {
        let deadline: Int64
        let sequence: Int
        let client: BlockedClient
        static func < (a: Entry, b: Entry) -> Bool { (a.deadline, a.sequence) < (b.deadline, b.sequence) }
        static func == (a: Entry, b: Entry) -> Bool { a.sequence == b.sequence }
    }

    private var heap = Heap<Entry>()
    private var sequence = 0
    private(set) var live = 0

    var nextDeadline: Int64? { heap.min?.deadline }

    package mutating func add(_ client: BlockedClient) {
        sequence += 1
        live += 1
        heap.insert(Entry(deadline: client.deadline, sequence: sequence, client: client))
        if heap.count > 2 * live + 1024 { heap = Heap(heap.unordered.filter { $0.client.isWaiting }) }
    }

    /// A client with a deadline was finished, whatever the outcome.
    mutating func finished() { live -= 1 }

    /// The next entry due at `now`, whether still waiting or not.
    mutating func popDue(now: Int64) -> BlockedClient? {
        guard let top = heap.min, top.deadline <= now else { return nil }
        return heap.removeMin().client
    }
}

/// A key some command readied, waiting on the thread that ran it to serve its waiters.
package struct ReadyQueueItem: Sendable {
    let shard: Int
    let key: DatabaseKey
    /// When it was readied, server-wide (`ReadyKeys`).
    let order: UInt64
}
