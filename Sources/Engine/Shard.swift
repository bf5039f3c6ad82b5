import Commands
import CUring
import DequeModule
import Keyspace
import RESP
import SystemPackage
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Messages other threads send a shard through its inbox.
package enum ShardMessage: Sendable {
    /// Take over a freshly accepted socket.
    case adopt(fd: FileDescriptor)
    /// Run this on the shard's thread (replies hopping home, CLIENT KILL, INFO gathering).
    case run(@Sendable (Shard) -> Void)
    /// Take over a connection moving here from another shard (ClientMigration.swift).
    case welcome(Connection)
    /// Shut down: close every connection and leave the loop.
    case stop
}

/// One shard: a thread with its own event loop (io_uring or epoll), the connections
/// homed on it, and the lock-protected part of the keyspace it owns.
///
/// Ownership: `clients`, `stats` and everything reached from a Connection belong
/// to this shard's thread. `store` and `watchers` belong to whichever thread holds
/// `server.locks[index]` (through a LockSection), which may be another shard running a
/// command on these keys.
public final class Shard: @unchecked Sendable, EventHandler {
    package let index: Int
    /// The server outlives its shards; unowned(unsafe) avoids a reference-count check on
    /// every access from the hot path.
    package unowned(unsafe) let server: Server
    let inbox = Inbox<ShardMessage>()
    let wakeFD: FileDescriptor
    let store: ShardStore
    /// WATCHed keys on this shard -> tokens to dirty when they change (under the shard lock).
    var watchers: [DatabaseKey: [WatchToken]] = [:]
    /// Blocked clients waiting on keys of this shard (under the shard lock).
    package let waiters: WaiterTable

    /// The server's fixed tables, copied here at start so that the command path reads
    /// them off `self` instead of through `server`, which costs a retain and a release
    /// per read (the server never replaces them).
    let stores: [ShardStore]
    let slots: SlotMap
    unowned(unsafe) let pause: ClientPause

    package var backend: EventBackend!
    /// The shard's own thread, once it runs.
    package private(set) var thread: pthread_t?
    /// The connections homed here (ClientRegistry.swift).
    private(set) var clients: ClientRegistry!
    /// The connection whose input is being processed (a busy script's client).
    package var activeConnection: Connection?
    package var stats: ShardStats
    /// Per-command latency histograms (INFO latencystats).
    package let latencies: CommandLatencies
    package let context: CommandContext
    /// Inbox messages a nested poll took out and left for the next drain (`wokenNested`).
    private var inboxLeftovers: [ShardMessage] = []
    /// Connections whose replies wait for the append-only file's fsync (DurabilityGate).
    var heldReplies: [Connection] = []
    /// `context.dirty` as of the last tick, for the save points (read by the main thread).
    let publishedDirty = Atomic<Int>(0)
    /// Replies written while CLIENT REPLY is OFF/SKIP go here and are dropped.
    let discard = IOBuffer(capacity: 1024)
    /// Milliseconds at the start of the input batch being processed.
    var batchTime: Int64 = 0
    /// Monotonic microseconds when the command being run started: a batch's commands run
    /// back to back, so one command's end is the next one's start (one clock read each
    /// for commandstats; the time between two includes parsing the second).
    var clockBeforeCommand = 0
    /// Reads `clockBeforeCommand` and its successors (CommandClock.swift).
    let clock = CommandClock.shared
    /// The last built-in command looked up, by the exact name the client sent
    /// (Execution.swift).
    var recentCommand: (name: Bytes, spec: Unmanaged<CommandSpec>)?
    /// The shard locks this thread holds, and the only way it takes them (LockSection.swift).
    package private(set) var section: LockSection!
    /// The clients blocked here and the keys readied for waiters (Blocking.swift).
    package private(set) var blocking: BlockingService!
    /// Connections holding a command back while CLIENT PAUSE is in force.
    var paused: [Connection] = []
    /// CLIENT LIST / KILL walks waiting for client moves to land (ClientMigration.swift).
    var waitingWalks: [(Shard) -> Void] = []
    /// Expirations and new keys taken from the keyspace, to publish as keyspace events.
    package var pendingKeyEvents: [KeyspaceEvent] = []
    /// Whether the server was over maxmemory with nothing to evict before the command now
    /// running (MemoryLimit.swift): a script without flags may not start writing then.
    package var outOfMemoryBeforeCommand = false
    /// Whether `outOfMemoryBeforeCommand` was decided for the batch now running.
    var memoryCheckedInBatch = false
    /// This shard's largest evictable client when it last looked (ClientEviction.swift).
    let largestClientMemory = Atomic<Int>(0)
    /// Messages a transaction or script published to this shard's own subscribers: they
    /// are delivered after its reply (as Redis 7.2 orders them), with the keyspace events.
    package var deferredMessages: [(channel: Bytes, message: Bytes, sharded: Bool)] = []

    /// Whether a command left keyspace events or messages to publish after its locks.
    @inline(__always) var hasEventsToPublish: Bool {
        !context.events.isEmpty || !pendingKeyEvents.isEmpty || !deferredMessages.isEmpty
    }
    /// Subscribers past their output-buffer limit, to close at the top of the loop.
    var overLimit: [Connection] = []
    /// This shard's subscribed connections by channel, pattern and shard channel.
    var subscribers: [[Bytes: [Int: Connection]]] = [[:], [:], [:]]
    /// This shard's MONITOR clients by ID (Monitor.swift).
    var monitors: [Int: Connection] = [:]
    /// What the scripting extension keeps per shard thread (its Lua interpreter, made on
    /// the first script).
    package var scriptingState: AnyObject?
    private var stopping = false
    private var nextTick: Int64 = 0

    init(index: Int, server: Server, store: ShardStore) {
        self.index = index
        self.server = server
        self.store = store
        stores = server.stores
        slots = server.slots
        pause = server.pause
        waiters = WaiterTable(store: store)
        wakeFD = .wakeCounter()
        stats = ShardStats(commandCount: server.statsSlots)
        latencies = CommandLatencies(commandCount: server.statsSlots)
        context = CommandContext(stores: server.stores, slots: server.slots, reply: ReplyWriter(buffer: IOBuffer(capacity: 64)))
        context.syncAppendOnlyFile = { [unowned server] in server.aof?.syncNow() ?? false }
        context.moduleType = { [unowned server] id in server.extensions.modules.rdbType(id: id) }
        section = LockSection(server: server, shard: self)
        clients = ClientRegistry(shard: index, server: server)
        blocking = BlockingService(shard: self)
    }

    /// Sends a message to this shard from any thread.
    package func post(_ message: ShardMessage) {
        if inbox.push(message) { wakeFD.signalWake() }
    }

    /// The shard thread's body: returns when the server stops.
    func run(useUring: Bool) {
        thread = pthread_self()
        if useUring, let uring = try? UringBackend(wakeFD: wakeFD, handler: self) {
            backend = uring
        } else {
            backend = EpollBackend(wakeFD: wakeFD, handler: self)
        }
        if index == 0 { backend.addListener(server.listenFD) }
        server.shardStarted(self)
        while !stopping {
            let now = ShardStore.nowMilliseconds()
            if now >= nextTick {
                tick(now: now)
                nextTick = now + Int64(1000 / max(1, server.config.int("hz")))
            }
            // Module timers first, and what they posted (an UnblockClient) with them: a
            // timer due with a blocked client's deadline answers that client first.
            if server.extensions.modules.fireTimers(on: self, now: now) { drainInbox() }
            blocking.fireTimeouts(now: now)
            if !paused.isEmpty { resumePaused(now: now) }
            if !waitingWalks.isEmpty { retryWaitingWalks() }
            runDeferredWork()
            var wake = nextTick
            if let d = blocking.timers.nextDeadline { wake = min(wake, d) }
            if let d = server.extensions.modules.nextTimerDue(shard: index) { wake = min(wake, d) }
            if !paused.isEmpty { wake = min(wake, max(now + 1, server.pause.end)) }
            if !waitingWalks.isEmpty { wake = min(wake, now + 1) }
            backend.poll(timeoutMicros: Int(max(0, wake * 1000 - ShardStore.nowMicroseconds())))
            // The last input batches of the pass may have left their locks kept.
            section.releaseKept()
            drainInbox()
        }
        for conn in Array(clients.all) { backend.close(conn) }
        // Let close completions arrive so sockets are really closed before exit.
        for _ in 0..<10 where !clients.isEmpty { backend.poll(timeoutMicros: 10_000) }
        backend.poll(timeoutMicros: 0)
        backend = nil
    }

    func woken() { drainInbox() }

    func beforeWaiting() { releaseHeldReplies() }

    /// During a nested poll: new connections are adopted at once (a client connecting while
    /// a script or module command runs long is served, and answered -BUSY, as Redis serves
    /// it); everything else waits in `inboxLeftovers`, in order, for the next drain.
    func wokenNested() {
        for message in inbox.drain() {
            if case .adopt(let fd) = message { adopt(fd) } else { inboxLeftovers.append(message) }
        }
    }

    private func drainInbox() {
        section.releaseKept()
        var messages = inboxLeftovers
        inboxLeftovers.removeAll()
        messages += inbox.drain()
        for message in messages {
            switch message {
            case .adopt(let fd): adopt(fd)
            case .welcome(let conn): welcome(conn)
            case .run(let body): body(self)
            case .stop: stopping = true
            }
        }
        runDeferredWork()
    }

    // MARK: connections

    func accepted(fd: FileDescriptor) {
        let target = clients.nextAcceptingShard()
        if target == index { adopt(fd) } else { server.shards[target].post(.adopt(fd: fd)) }
    }

    private func adopt(_ fd: FileDescriptor) {
        stats.connectionsReceived += 1
        guard clients.hasRoom else {
            stats.rejectedConnections += 1
            let msg: StaticString = "-ERR max number of clients reached\r\n"
            _ = fd.send(UnsafeRawBufferPointer(start: msg.utf8Start, count: msg.utf8CodeUnitCount))
            fd.closeQuietly()
            return
        }
        fd.configureClient(keepAliveSeconds: server.config.int("tcp-keepalive"))
        let now = ShardStore.nowMilliseconds()
        let conn = Connection(
            id: server.nextClientID.add(1, ordering: .relaxed).newValue, fd: fd,
            peer: FileDescriptor.peerName(of: fd), local: FileDescriptor.localName(of: fd),
            authenticated: !server.config.hasPassword.load(ordering: .acquiring),
            maxBulkLength: server.config.maxBulkLength.load(ordering: .relaxed), now: now)
        clients.admit(conn)
        backend.register(conn)
    }

    func received(_ conn: Connection) {
        stats.netInputBytes += conn.input.readableCount
        conn.lastInteraction = ShardStore.nowMilliseconds()
        // Outside a nested poll (a command waiting on the event loop) the batch's locks may
        // stay kept for the next connection's batch; whatever comes next that takes locks
        // releases them first, and the loop releases them after each pass.
        processInput(conn, keepingLocks: activeConnection == nil)
        flushReplies(conn)
        noteClientMemory(conn)
        runDeferredWork()
        if conn.awayStreak > 0 { considerMoving(conn) }
    }

    func closed(_ conn: Connection) {
        section.releaseKept()
        guard clients.remove(conn) else { return }
        forgetClientMemory(conn)
        unwatchAll(conn)
        _ = blocking.abandonBlocked(conn)
        unsubscribeAll(conn)
        stopMonitoring(conn)
        if conn.parkedCommand != nil {
            paused.removeAll { $0 === conn }
            server.blockedClients.subtract(1, ordering: .relaxed)
        }
    }

    /// Closes a connection as CLIENT KILL or a limit does: no more replies, except a
    /// blocked client's reply that is already on its way (its element must not be lost).
    func kill(_ conn: Connection) {
        section.releaseKept()
        guard blocking.abandonBlocked(conn) else {
            conn.closeAfterFlush = true
            return
        }
        conn.closeAfterFlush = false
        conn.output.clear()
        backend.close(conn)
    }

    /// Runs the periodic work: active expiry and idle-client timeouts.
    private func tick(now: Int64) {
        publishedDirty.store(context.dirty, ordering: .relaxed)
        KeyAccess.refreshClock(nowMilliseconds: now)
        memoryCheckedInBatch = false
        if server.config.maxMemory.load(ordering: .relaxed) > 0 { evictToLimit() }
        // Behind a busy script, expiry waits for a later tick: the shard stays responsive.
        if server.activeExpiry.load(ordering: .relaxed), section.enter(index, .refuseWhenBusy) {
            for db in store.databases where db.volatileCount > 0 {
                _ = db.expireDue(now: now, limit: 10_000)
            }
            section.leave(index)
        }
        section.finish()
        recheckSoftLimits()
        recountClientMemory()
        let idle = server.config.idleTimeoutSeconds.load(ordering: .relaxed)
        if idle > 0 {
            for conn in Array(clients.all) where !conn.suspended && now - conn.lastInteraction > Int64(idle) * 1000 {
                kill(conn)
            }
        }
    }

    /// Runs `work` on every shard's thread (or only on `only`'s) and `finish` on this one
    /// with the results in shard order, suspending `conn`'s pipeline meanwhile so replies
    /// stay in order. `whenDone` runs once every shard has answered, even if `conn` has
    /// closed meanwhile.
    func gather<T: Sendable>(_ conn: Connection, only: [Shard]? = nil, work: @escaping @Sendable (Shard) -> T,
                             finish: @escaping (Shard, Connection, [T]) -> Void,
                             whenDone: (() -> Void)? = nil) {
        let targets = only ?? server.shards
        let collector = Collector<T>(count: targets.count)
        conn.suspended = true
        let home = self
        let done: (Shard) -> Void = { shard in
            whenDone?()
            conn.suspended = false
            guard !conn.closing else { return }
            finish(shard, conn, collector.results.map { $0! })
            shard.processInput(conn)
            shard.flushReplies(conn)
        }
        let box = UncheckedBox(done)
        for (i, shard) in targets.enumerated() {
            if shard === self {
                collector.results[i] = work(self)
                collector.remaining -= 1
                continue
            }
            shard.post(.run { remote in
                let r = work(remote)
                home.post(.run { _ in
                    collector.results[i] = r
                    collector.remaining -= 1
                    if collector.remaining == 0 { box.value(home) }
                })
            })
        }
        if collector.remaining == 0 {
            // Everything was local (one shard): answer inline; the caller's input loop
            // goes on by itself, so do not re-enter it.
            whenDone?()
            conn.suspended = false
            finish(self, conn, collector.results.map { $0! })
        }
    }
}

/// Results of a `gather`, touched only on the home shard's thread.
final class Collector<T>: @unchecked Sendable {
    var results: [T?]
    var remaining: Int
    init(count: Int) { results = Array(repeating: nil, count: count); remaining = count }
}

/// Carries a home-thread-only closure through another shard and back.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// Counters a shard thread keeps for INFO; read by others only through `gather`.
package struct ShardStats: Sendable {
    var connectionsReceived = 0
    var rejectedConnections = 0
    var queryLimitDisconnections = 0
    var outputLimitDisconnections = 0
    var evictedClients = 0
    var commandsProcessed = 0
    var netInputBytes = 0
    var netOutputBytes = 0
    var keyspaceHits = 0
    var keyspaceMisses = 0
    var clientMigrations = 0
    var calls: [Int]
    package var microseconds: [Int]
    package var failedCalls: [Int]
    var rejectedCalls: [Int]

    init(commandCount: Int) {
        calls = Array(repeating: 0, count: commandCount)
        microseconds = calls
        failedCalls = calls
        rejectedCalls = calls
    }
}

extension Shard {
    /// Work kept for the top of the shard's loop, never done inside a command: closing
    /// subscribers past their output limit, and letting unblocked connections run the
    /// input that waited behind their blocked command.
    func runDeferredWork() {
        if overLimit.isEmpty && blocking.resumeQueue.isEmpty { return }
        section.releaseKept()
        if !overLimit.isEmpty {
            let closing = overLimit
            overLimit = []
            for conn in closing where !conn.closing { kill(conn) }
        }
        while !blocking.resumeQueue.isEmpty {
            let batch = blocking.resumeQueue
            blocking.resumeQueue = []
            for conn in batch where !conn.closing {
                processInput(conn)
                flushReplies(conn)
            }
        }
    }
}
