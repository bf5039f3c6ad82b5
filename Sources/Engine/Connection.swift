import Commands
import RESP
import Synchronization
import SystemPackage

/// One client connection. It lives on its home shard for its whole life, and all of its
/// state is touched only by that shard's thread; other threads reach it only through the
/// home shard's inbox. That confinement is why it can be `@unchecked Sendable`.
public final class Connection: @unchecked Sendable {
    package let id: Int
    let fd: FileDescriptor
    package let peer: String
    let local: String
    let createdAt: Int64
    var lastInteraction: Int64

    // I/O state, driven by the shard's event backend. Buffers start small and grow with
    // what the client sends and is sent (see `prepareReceive`), so a parked client costs
    // little.
    let input = IOBuffer(capacity: Connection.smallReceive)
    var output = IOBuffer(capacity: 128)
    /// io_uring only: the buffer the kernel is sending from; never touched meanwhile.
    var sending = IOBuffer(capacity: 64)
    /// Room the next receive gets (`prepareReceive`), and how many receives in a row
    /// came in well under it.
    private var receiveRoom = Connection.smallReceive
    private var smallReceives = 0
    var parser: RESPParser
    /// Slot in the backend's connection table (io_uring tags).
    var slot = -1
    var recvInFlight = false
    var sendInFlight = false
    /// Set once the connection must go: no more commands run, it closes when idle.
    var closing = false
    /// Close after the pending output is written (QUIT, protocol errors).
    var closeAfterFlush = false
    /// Replies wait for the append-only file's fsync (Shard.holdReplies): the backend sends nothing.
    var outputHeld = false
    /// A command is waiting for other shards (INFO, CLIENT LIST...); later input waits.
    package var suspended = false

    /// Input batches whose keys are not worth prefetching, as the last scan found
    /// (BatchPrefetch.swift).
    var prefetchSkips = 0

    // Client state.
    package var db = 0
    package var protocolVersion = 2
    package var name = ""
    var authenticated: Bool
    /// `CommandSpec.id` of the last command run, -1 before any (CLIENT LIST's cmd=).
    var lastCommand = -1
    /// The subcommand of the last command when it was a container's (cmd=client|list).
    var lastSubcommand: String? = nil
    package var transaction: Transaction? = nil
    var watched: [WatchedKey] = []
    let watchToken = WatchToken()
    /// CLIENT REPLY OFF.
    package var repliesOff = false
    /// CLIENT SETINFO LIB-NAME / LIB-VER.
    var libraryName = "", libraryVersion = ""
    /// Bytes read from and written to the socket, and commands run (CLIENT LIST's
    /// tot-net-in, tot-net-out, tot-cmds).
    package var netInputBytes = 0, netOutputBytes = 0, commandsRun = 0
    /// CLIENT REPLY SKIP: replies still to drop (the SKIP itself and the next command).
    package var skipReplies = 0
    /// Set while the connection waits in a blocking command.
    package var blocked: BlockedClient? = nil
    /// That command and the microseconds its first run took, for SLOWLOG and latencystats
    /// once it is unblocked.
    var blockedCommand: (args: [Bytes], microseconds: Int)? = nil
    /// The command held back by CLIENT PAUSE, run when the pause ends.
    var parkedCommand: [Bytes]? = nil
    /// Channels, patterns and shard channels subscribed to (`PubSubRegistry.Kind` order).
    var subscriptions: [Set<Bytes>] = [[], [], []]
    /// When pending output first exceeded the pubsub soft limit (0: it has not).
    var softLimitSince: Int64 = 0
    /// Past its output-buffer limit: gets no more messages and closes at the top of the loop.
    var overOutputLimit = false
    /// Receives every command the server runs (MONITOR).
    var isMonitor = false
    /// CLIENT NO-EVICT: never closed by maxmemory-clients (ClientEviction.swift).
    var noEvict = false
    /// Closed by maxmemory-clients, waiting for the top of the loop.
    var evicted = false
    /// This client's buffers as last added to the server's total (ClientEviction.swift).
    var countedMemory = 0
    /// Key-bearing commands in a row whose keys all live on `awayShard`, another shard
    /// than this one's home (ClientMigration.swift).
    var awayShard = -1
    var awayStreak = 0
    /// The shard this connection is moving to, while it moves (-1: it is not).
    var moveTo = -1

    var isSubscribed: Bool { !subscriptions[0].isEmpty || !subscriptions[1].isEmpty || !subscriptions[2].isEmpty }

    package init(id: Int, fd: FileDescriptor, peer: String, local: String, authenticated: Bool, maxBulkLength: Int, now: Int64) {
        self.id = id
        self.fd = fd
        self.peer = peer
        self.local = local
        self.authenticated = authenticated
        self.createdAt = now
        self.lastInteraction = now
        parser = RESPParser(maxBulkLength: maxBulkLength)
    }

    /// The CLIENT LIST / CLIENT INFO line for this connection.
    /// `shard=` is Berth's own field (the home shard), after Redis's fields.
    func infoLine(now: Int64, server: Server, shard: Int) -> String {
        var lastCommand = self.lastCommand >= 0 ? server.commandName(self.lastCommand) : "NULL"
        if let sub = lastSubcommand { lastCommand += "|" + sub }
        var flags = ""
        if transaction != nil { flags += "x" }
        if blocked != nil { flags += "b" }
        if isSubscribed { flags += "P" }
        if isMonitor { flags += "O" }
        if closeAfterFlush { flags += "c" }
        if noEvict { flags += "e" }
        if flags.isEmpty { flags = "N" }
        let age = (now - createdAt) / 1000
        let idle = (now - lastInteraction) / 1000
        let multi = transaction.map { $0.queue.count } ?? -1
        return "id=\(id) addr=\(peer) laddr=\(local) fd=\(fd.rawValue) name=\(name) age=\(age) idle=\(idle) flags=\(flags) db=\(db) sub=\(subscriptions[0].count) psub=\(subscriptions[1].count) ssub=\(subscriptions[2].count) multi=\(multi) watch=\(watched.count) qbuf=\(input.readableCount) qbuf-free=\(input.writableCount) argv-mem=0 multi-mem=0 rbs=\(input.capacity) rbp=\(input.capacity) obl=\(output.readableCount) oll=0 omem=\(max(0, output.readableCount - 16384)) tot-mem=\(input.capacity + output.capacity) events=r cmd=\(lastCommand) user=default redir=-1 resp=\(protocolVersion) lib-name=\(libraryName) lib-ver=\(libraryVersion) tot-net-in=\(netInputBytes) tot-net-out=\(netOutputBytes) tot-cmds=\(commandsRun) shard=\(shard)"
    }
}

/// MULTI state: the queued commands, and whether queuing hit an error (EXECABORT).
package struct Transaction {
    var queue: [(CommandSpec, [Bytes])] = []
    var failed = false
}

/// A key a client WATCHes: which shard holds it and in which database.
struct WatchedKey: Hashable {
    let shard: Int
    let db: Int
    let key: Bytes
    /// The key existed (unexpired) when watched: its expiry since then counts as a change
    /// at EXEC, as Redis counts the deletion of an expired key.
    var existed = false

    static func == (a: WatchedKey, b: WatchedKey) -> Bool { a.db == b.db && a.key == b.key }
    func hash(into h: inout Hasher) { h.combine(db); h.combine(key) }
}

/// Shared between a watching client and the shards holding its watched keys: any write
/// to a watched key sets `dirty`, which makes the client's EXEC fail.
final class WatchToken: Sendable {
    let dirty = Atomic<Bool>(false)
}

extension Connection {
    /// The receive room of an interactive or parked client.
    static let smallReceive = 512
    /// The most a receive gets beyond what a bulk string being read needs.
    static let largeReceive = 64 * 1024

    /// Makes room for the next receive, for either backend. A client whose last receive
    /// filled the room (a pipelining one) gets twice as much next time, up to 64 KB; one
    /// whose receives keep coming in well under it (eight in a row) goes back down,
    /// halving to 512 bytes, and an emptied buffer four times larger than the room is
    /// given back, as Redis shrinks an idle client's query buffer. The hysteresis keeps a
    /// client whose batches vary from reallocating at every turn. A bulk string being
    /// read gets the room it still needs in one go.
    func prepareReceive() {
        let room = max(receiveRoom, parser.pendingBulkBytes - input.readableCount)
        if input.isEmpty && input.capacity > 4 * room { input.shrinkIfEmpty(to: room) }
        input.reserve(room)
    }

    /// A receive into `room` bytes brought `count` (positive).
    func received(_ count: Int, room: Int) {
        netInputBytes += count
        if count >= room {
            receiveRoom = min(receiveRoom * 2, Connection.largeReceive)
            smallReceives = 0
        } else if count < receiveRoom / 4 {
            smallReceives += 1
            if smallReceives >= 8 {
                receiveRoom = max(receiveRoom / 2, Connection.smallReceive)
                smallReceives = 0
            }
        } else {
            smallReceives = 0
        }
    }

    /// The client just blocked: it will send nothing for a while, so it keeps only a
    /// small receive buffer (an empty one is given back now; the ring's next receive
    /// is armed with the small room).
    func park() {
        receiveRoom = Connection.smallReceive
        smallReceives = 0
        input.shrinkIfEmpty(to: Connection.smallReceive)
        output.shrinkIfEmpty(to: 128)
        sending.shrinkIfEmpty(to: 64)
    }
}

extension Connection {
    /// The backend wrote everything there was to send: a blocked client's reply may now
    /// be written by whichever shard serves it (DirectReply.swift).
    func outputDrained() { blocked?.directReply?.open() }

    /// Closes the socket for good, for either backend; a shard writing a reply to it
    /// through the door finishes first.
    func closeDescriptor() {
        blocked?.directReply?.shut()
        fd.closeQuietly()
    }
}
