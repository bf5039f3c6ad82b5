import Engine
import Commands
import Keyspace
import RESP
import Synchronization

// Module-blocked clients (RedisModule_BlockClient and friends) on Berth's one blocking
// state machine.
//
// A module command that calls BlockClient gets a `ModuleBlock` handle at once; when the
// command returns, its shard registers an ordinary `BlockedClient` whose operation is
// `.external(block)` (with the block's keys in the waiter tables for BlockClientOnKeys,
// and its deadline in the shard's timer heap). From then on the client ends, exactly
// once, by one CAS on that BlockedClient, and every ending runs on the client's home
// shard:
// - UnblockClient / AbortBlock (any thread) posts `moduleUnblocked` to the home shard's
//   inbox; there the claim `.completed` wins or loses like any other claimant, and a win
//   runs the reply callback, then delivers replies made on thread-safe contexts.
// - A key a BlockClientOnKeys client waits on became ready: the serving shard does not
//   pop anything itself, it posts `moduleKeyReady` home; there the reply callback runs
//   under every shard lock and, only if it returns OK, the client is claimed `.served`
//   (nothing else can claim it meanwhile: every other outcome also runs on this thread).
// - The deadline, CLIENT UNBLOCK (only when the module gave a timeout callback) and a
//   disconnect go through the engine's usual paths, which call back here for the
//   timeout callback and the disconnect callback.
// free_privdata runs exactly once, when both the client's outcome is done and the module
// has let go of its handle (UnblockClient or AbortBlock; BlockClientOnKeys clients hold
// no handle, so their privdata is freed with the outcome).

/// `RedisModuleBlockedClient`.
///
/// Invariants: `privdata` and `threadReplies` are shared with module threads and only
/// touched under `shared`; the time measures are atomics any thread may add to;
/// everything else belongs to the home shard's thread. The
/// module's handle is one retain, dropped when `moduleUnblocked` runs.
final class ModuleBlock: EngineWait, @unchecked Sendable {
    typealias FreeFunction = @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void

    /// free_privdata of a C module, or a Swift module's closure over its privdata value.
    enum PrivdataRelease {
        case c(FreeFunction)
        case swift((Any?) -> Void)
    }

    let module: Module
    let home: Int
    let connectionID: Int
    let db: Int
    let protocolVersion: Int
    let replyCallback: ModuleCallback?
    let timeoutCallback: ModuleCallback?
    let freePrivdata: PrivdataRelease?
    let timeoutMilliseconds: Int
    let keys: [Bytes]
    let unblockOnDeleted: Bool
    /// False for BlockClientOnKeys: no handle for the module to give back.
    let moduleHoldsHandle: Bool

    private struct Shared: @unchecked Sendable {
        var privdata: UnsafeMutableRawPointer?
        var value: Any?
        var threadReplies: [ModuleReplyBuilder.Reply] = []
        var disconnectCallback: FreeFunction?
    }
    private let shared: Mutex<Shared>

    /// Home thread only; set while the client waits, nil before and after.
    var client: BlockedClient?
    var aborted = false
    /// Blocking was refused (MULTI): the client never waits, but the handle stays valid.
    var refused = false
    private var outcomeDone = false
    private var handleReleased = false
    private var privdataFreed = false
    /// BlockedClientMeasureTimeStart/End (any thread): the time a module's thread spent,
    /// added to the command's INFO commandstats when the wait ends, as Redis does.
    let measureStart = Atomic<Int>(-1)
    let measuredMicroseconds = Atomic<Int>(0)
    /// The statistics id of the command that blocked, its arguments and client (for the
    /// slow log), and how long the command itself ran (set once it returned).
    let commandID: Int
    let command: [Bytes]
    let peer: String
    let clientName: String
    var commandMicroseconds = 0

    init(ctx: ModuleContext, home: Int, connectionID: Int, reply: ModuleCallback?, timeout: ModuleCallback?,
         free: PrivdataRelease?, timeoutMilliseconds: Int, keys: [Bytes], unblockOnDeleted: Bool, privdata: UnsafeMutableRawPointer?) {
        module = ctx.module
        self.home = home
        self.connectionID = connectionID
        db = ctx.db
        protocolVersion = ctx.protocolVersion
        replyCallback = reply
        timeoutCallback = timeout
        freePrivdata = free
        self.timeoutMilliseconds = timeoutMilliseconds
        self.keys = keys
        self.unblockOnDeleted = unblockOnDeleted
        moduleHoldsHandle = keys.isEmpty
        commandID = ctx.commandID
        command = ctx.arguments
        peer = ctx.connection?.peer ?? ""
        clientName = ctx.connection?.name ?? ""
        shared = Mutex(Shared(privdata: privdata))
        module.liveBlocks.add(1, ordering: .relaxed)
    }

    var privdata: UnsafeMutableRawPointer? {
        get { shared.withLock { $0.privdata } }
        set { shared.withLock { $0.privdata = newValue } }
    }

    /// A Swift module's privdata.
    var value: Any? {
        get { shared.withLock { $0.value } }
        set { shared.withLock { $0.value = newValue } }
    }

    var disconnectCallback: FreeFunction? {
        get { shared.withLock { $0.disconnectCallback } }
        set { shared.withLock { $0.disconnectCallback = newValue } }
    }

    func addThreadReplies(_ replies: [ModuleReplyBuilder.Reply]) {
        guard !replies.isEmpty else { return }
        shared.withLock { $0.threadReplies += replies }
    }

    func takeThreadReplies() -> [ModuleReplyBuilder.Reply] {
        shared.withLock { s in
            defer { s.threadReplies = [] }
            return s.threadReplies
        }
    }

    var handle: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    static func from(_ p: UnsafeMutableRawPointer?) -> ModuleBlock {
        Unmanaged<ModuleBlock>.fromOpaque(p!).takeUnretainedValue()
    }

    // MARK: EngineWait (BlockedClient.swift)

    /// A module decides for itself whether a readied key serves its client: its reply
    /// callback runs on the client's home shard.
    func keyReadied(_ client: BlockedClient, key: Bytes, serving: Shard) {
        serving.server.shards[client.home].post(.run { $0.moduleKeyReady(client, self, key: key) })
    }

    /// Only a module that handles its timeout lets CLIENT UNBLOCK end the wait.
    var mayBeUnblocked: Bool { timeoutCallback != nil }

    func timeoutReply(on shard: Shard, protocolVersion: Int) -> [UInt8]? {
        let out = IOBuffer(capacity: 64)
        shard.writeModuleTimeoutReply(self, to: ReplyWriter(buffer: out, protocolVersion: protocolVersion))
        return out.readableArray
    }

    func clientDisconnected(on shard: Shard) { shard.moduleClientDisconnected(self) }

    /// The module command's own time, logged with the module's background time when the
    /// wait ends (`recordTime`).
    func commandRan(_ commandID: Int, microseconds: Int) -> Bool {
        guard commandID == self.commandID else { return false }
        commandMicroseconds = microseconds
        return true
    }

    /// The client's wait is over, whatever ended it (home thread).
    func finished(on shard: Shard) {
        recordTime(on: shard)
        outcomeDone = true
        client = nil  // the client's operation holds this block: break the cycle
        freePrivdataIfDone(on: shard)
    }

    /// As Redis does when a blocked client's wait ends: the background time the module
    /// measured joins the command's INFO commandstats time, and the command enters the
    /// slow log if the command and that time together pass the threshold (the command's
    /// own run skipped the slow log for this reason, Execution.swift).
    private func recordTime(on shard: Shard) {
        guard commandID >= 0, client != nil else { return }
        let measured = measuredMicroseconds.load(ordering: .acquiring)
        shard.stats.microseconds[commandID] += measured
        let total = commandMicroseconds + measured
        if shard.server.config.latencyTracking.load(ordering: .relaxed) {
            shard.latencies.record(commandID, microseconds: total)
        }
        if SlowLog.isSlow(total, shard.server.config) {
            shard.server.slowlog.record(command, microseconds: total, peer: peer, name: clientName,
                                        maxLength: shard.server.config.slowlogMaxLength.load(ordering: .relaxed))
        }
    }

    /// The module gave the handle back (home thread).
    func handleGivenBack(on shard: Shard) {
        guard !handleReleased else { return }
        handleReleased = true
        if client == nil { outcomeDone = true }  // never waited: aborted or refused
        freePrivdataIfDone(on: shard)
        if moduleHoldsHandle { Unmanaged.passUnretained(self).release() }
    }

    private func freePrivdataIfDone(on shard: Shard) {
        guard outcomeDone, handleReleased || !moduleHoldsHandle, !privdataFreed else { return }
        privdataFreed = true
        module.liveBlocks.subtract(1, ordering: .releasing)
        switch freePrivdata {
        case .c(let free)?:
            guard let p = privdata else { return }
            let ctx = ModuleContext(kind: .blockedReply, module: module, server: shard.server, shard: shard,
                                    clientID: connectionID, db: db, protocolVersion: protocolVersion, holdsLocks: false)
            free(ctx.pointer, p)
            ctx.close()
        case .swift(let release)?:
            release(value)
        case nil:
            break
        }
    }
}

extension Shard {
    /// Registers the blocks a module command filed (caller holds every shard lock).
    func registerModuleBlocks(_ ctx: ModuleContext, _ conn: Connection) {
        for block in ctx.newBlocks where block.aborted || block.refused || conn.blocked != nil {
            // Never waits: a BlockClientOnKeys privdata has nobody else to free it.
            if !block.moduleHoldsHandle { block.finished(on: self) }
        }
        for block in ctx.newBlocks where !block.aborted && !block.refused && conn.blocked == nil {
            let keys = block.keys.map { (shard: server.slots.shard(of: $0), key: DatabaseKey(db: block.db, key: $0)) }
            let deadline = block.timeoutMilliseconds > 0 ? ShardStore.nowMilliseconds() + Int64(block.timeoutMilliseconds) : 0
            let client = BlockedClient(
                connectionID: conn.id, home: index, db: block.db, keys: keys, operation: .external(block),
                protocolVersion: conn.protocolVersion, deadline: deadline,
                discardsReply: conn.repliesOff || conn.skipReplies > 0)
            for (s, key) in keys { server.shards[s].waiters.add(client, on: key) }
            block.client = client
            conn.blocked = client
            conn.suspended = true
            server.blockedClients.add(1, ordering: .relaxed)
            if deadline > 0 { blocking.timers.add(client) }
        }
        ctx.newBlocks = []
    }

    /// UnblockClient or AbortBlock reached the home shard.
    func moduleUnblocked(_ block: ModuleBlock, abort: Bool) {
        if let client = block.client, client.claim(.completed) {
            let bytes = abort ? [] : runModuleReplyCallback(block, readyKey: nil).bytes
            blocking.finishBlocked(client, .reply(bytes))
        }
        block.handleGivenBack(on: self)
    }

    /// UnblockClient of a client blocked on keys reached the home shard: unless its wait
    /// already ended, it ends as by timeout (its timeout callback answers).
    func moduleUnblockedOnKeys(_ block: ModuleBlock) {
        guard let client = block.client, client.claim(.unblocked) else { return }
        blocking.finishBlocked(client, .timeout)
    }

    /// A key `client` waits on may serve it: ask the module (home shard, no lock held).
    func moduleKeyReady(_ client: BlockedClient, _ block: ModuleBlock, key: Bytes) {
        guard client.isWaiting, block.replyCallback != nil else { return }
        _ = section.enter(section.everyShard, .outlastBusy)
        context.dbIndex = block.db
        context.now = ShardStore.nowMilliseconds()
        let exists = context.lookup(key) != nil
        var result: (status: Int32, bytes: [UInt8]) = (ModuleAPI.err, [])
        if exists || block.unblockOnDeleted {
            result = runModuleReplyCallback(block, readyKey: key)
        }
        section.leave(section.everyShard)
        if result.status == ModuleAPI.ok && client.claim(.served) {
            blocking.finishBlocked(client, .reply(result.bytes))
        }
        section.finish()
    }

    /// Runs the reply callback and returns its status and reply bytes, followed by the
    /// replies made on thread-safe contexts; nothing when it returned an error status
    /// while waiting on keys (the client keeps waiting).
    private func runModuleReplyCallback(_ block: ModuleBlock, readyKey: Bytes?) -> (status: Int32, bytes: [UInt8]) {
        let ctx = ModuleContext(kind: .blockedReply, module: block.module, server: server, shard: self,
                                clientID: block.connectionID, db: block.db, protocolVersion: block.protocolVersion,
                                holdsLocks: readyKey != nil)
        ctx.block = block
        ctx.readyKey = readyKey
        ctx.denyBlocking = true
        var status = ModuleAPI.ok
        // As in Redis, the callbacks get the arguments of the command that blocked.
        if let cb = block.replyCallback { status = cb.run(ctx, arguments: block.command) }
        defer { ctx.close() }
        if readyKey != nil && status != ModuleAPI.ok { return (status, []) }
        for r in block.takeThreadReplies() { ctx.reply.add(r) }
        // The command fails when its client is answered with an error, as Redis counts it
        // when the unblocked client's reply is written.
        if ctx.reply.isError && block.commandID >= 0 { stats.failedCalls[block.commandID] += 1 }
        let out = IOBuffer(capacity: 128)
        ctx.reply.write(to: ReplyWriter(buffer: out, protocolVersion: block.protocolVersion))
        return (status, out.readableArray)
    }

    /// The deadline passed or CLIENT UNBLOCK ... TIMEOUT: the timeout callback's reply.
    func writeModuleTimeoutReply(_ block: ModuleBlock, to w: ReplyWriter) {
        guard let cb = block.timeoutCallback else { w.null(); return }
        let ctx = ModuleContext(kind: .blockedTimeout, module: block.module, server: server, shard: self,
                                clientID: block.connectionID, db: block.db, protocolVersion: block.protocolVersion,
                                holdsLocks: false)
        ctx.block = block
        ctx.denyBlocking = true
        _ = cb.run(ctx, arguments: block.command)
        ctx.reply.write(to: w)
        ctx.close()
    }

    /// The client went away while blocked: the disconnect callback, if any.
    func moduleClientDisconnected(_ block: ModuleBlock) {
        guard let cb = block.disconnectCallback else { return }
        let ctx = ModuleContext(kind: .disconnect, module: block.module, server: server, shard: self,
                                clientID: block.connectionID, db: block.db, protocolVersion: block.protocolVersion,
                                holdsLocks: false)
        ctx.block = block
        cb(ctx.pointer, block.handle)
        ctx.close()
    }
}
