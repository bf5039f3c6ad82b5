import Engine
import CModuleHost
import Commands
import RESP

/// What a module's C code holds as `RedisModuleCtx *`: the C struct (GetApi first, then
/// this object) and everything one callback needs: whose client it serves, the reply
/// it is building, its auto-memory, and the blocked client it reports on.
///
/// Invariants: a context is used by one thread at a time: a shard thread for command,
/// reply, timeout and disconnect callbacks (it lives for that one callback), or the
/// module thread that owns a thread-safe context (it lives until FreeThreadSafeContext).
/// `raw.owner` points at this object, unretained: whoever created the context keeps it
/// alive until `close()`.
final class ModuleContext {
    enum Kind {
        case load, command, blockedReply, blockedTimeout, disconnect, threadSafe, timer
    }

    let kind: Kind
    let module: Module
    unowned(unsafe) let server: Server
    /// The shard thread this callback runs on; nil on a module thread.
    let shard: Shard?
    let clientID: Int
    var db: Int
    let protocolVersion: Int
    let raw: UnsafeMutablePointer<BerthModuleCtx>
    /// On a thread-safe context of a blocked client, each complete reply moves to the
    /// block as soon as it is made (as Redis writes it to the client's reply buffer at
    /// once), so it is there even if the module calls UnblockClient before
    /// FreeThreadSafeContext.
    var reply = ModuleReplyBuilder() {
        didSet { if kind == .threadSafe, let block { block.addThreadReplies(reply.takeComplete()) } }
    }
    var autoMemory = false
    var autoStrings: [ModuleString] = []
    var autoCallReplies: [CallReply] = []
    var autoKeys: [ModuleKey] = []
    /// The blocked client a reply/timeout callback or a thread-safe context reports on.
    var block: ModuleBlock?
    /// The key that woke a client blocked on keys, during its reply callback.
    var readyKey: Bytes?
    /// Blocks created by this command callback, registered once it returns.
    var newBlocks: [ModuleBlock] = []
    /// True while the context holds every shard lock (module command, or a thread-safe
    /// context between Lock and Unlock).
    var holdsLocks: Bool
    /// True inside MULTI or a nested Call: blocking is refused.
    var denyBlocking = false
    /// True for a command run by EXEC (GetContextFlags reports MULTI).
    var inMulti = false
    /// When this callback or thread-safe section started (monotonic µs), for Yield's
    /// busy-reply-threshold; and whether its Yield announced the server busy.
    var sectionStart = 0
    var announcedBusy = false
    /// This context's operation raised `ModuleYieldGate.sectionHeld` (ModuleYield.swift).
    var marksSection = false
    /// The client a command callback runs for (BlockClient blocks it).
    var connection: Connection?
    /// The command being run, for WrongArity, and its statistics id (-1 outside commands).
    var commandName = ""
    var commandID = -1
    /// The arguments of a Swift module's callback (C callbacks get argv instead).
    var arguments: [Bytes] = []
    private var commandContextStorage: CommandContext?

    init(kind: Kind, module: Module, server: Server, shard: Shard?, clientID: Int, db: Int,
         protocolVersion: Int, holdsLocks: Bool) {
        self.kind = kind
        self.module = module
        self.server = server
        self.shard = shard
        self.clientID = clientID
        self.db = db
        self.protocolVersion = protocolVersion
        self.holdsLocks = holdsLocks
        raw = .allocate(capacity: 1)
        raw.initialize(to: BerthModuleCtx(get_api: unsafeBitCast(ModuleContext.getAPI, to: UnsafeMutableRawPointer.self),
                                          owner: nil))
        raw.pointee.owner = Unmanaged.passUnretained(self).toOpaque()
    }

    private static let getAPI: @convention(c) (UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Int32 = berth_module_get_api

    var pointer: UnsafeMutableRawPointer { UnsafeMutableRawPointer(raw) }

    /// The context behind a pointer a module passed back.
    static func from(_ p: UnsafeMutableRawPointer?) -> ModuleContext {
        let raw = p!.assumingMemoryBound(to: BerthModuleCtx.self)
        return Unmanaged<ModuleContext>.fromOpaque(raw.pointee.owner!).takeUnretainedValue()
    }

    /// The command context Call and the key API run data commands with: the shard's own
    /// on a shard thread (so ready keys and keyspace events flow as for any command), a
    /// private one on a module thread.
    var commandContext: CommandContext {
        if let shard { return shard.context }
        if let c = commandContextStorage { return c }
        let c = CommandContext(stores: server.stores, slots: server.slots,
                               reply: ReplyWriter(buffer: IOBuffer(capacity: 64), protocolVersion: 2))
        commandContextStorage = c
        return c
    }

    /// Ends the callback: frees what auto-memory kept, and the C struct.
    func close() {
        releaseAutoMemory()
        raw.deinitialize(count: 1)
        raw.deallocate()
    }

    func releaseAutoMemory() {
        for key in autoKeys { key.close() }
        autoKeys = []
        for s in autoStrings { Unmanaged.passUnretained(s).release() }
        autoStrings = []
        for r in autoCallReplies where !r.released {
            r.released = true
            Unmanaged.passUnretained(r).release()
        }
        autoCallReplies = []
    }
}

/// The reply a module builds with the ReplyWith* calls, kept as a tree until the callback
/// ends so that postponed lengths (ReplySetArrayLength) cost nothing, then written in the
/// client's protocol.
///
/// Invariants: `open` holds the aggregates not yet complete, innermost last; one with a
/// known length closes itself when its last element arrives, a postponed one (length nil)
/// when the module sets its length.
struct ModuleReplyBuilder {
    enum AggregateKind { case array, map, set }

    indirect enum Reply {
        case integer(Int), double(Double), bool(Bool), simple(String), error(String)
        case bulk(Bytes), verbatim(Bytes), null, nullArray
        case aggregate(AggregateKind, [Reply])
        case value(RESPValue)
    }

    private struct Open {
        let kind: AggregateKind
        var length: Int?
        var items: [Reply] = []
        var expected: Int? { length.map { kind == .map ? 2 * $0 : $0 } }
    }

    private(set) var replies: [Reply] = []
    private var open: [Open] = []

    var isEmpty: Bool { replies.isEmpty && open.isEmpty }

    /// True when the first complete reply is an error (the call counts as failed).
    var isError: Bool {
        switch replies.first {
        case .error, .value(.error): return true
        default: return false
        }
    }

    mutating func add(_ r: Reply) {
        if open.isEmpty { replies.append(r); return }
        open[open.count - 1].items.append(r)
        closeCompleted()
    }

    mutating func begin(_ kind: AggregateKind, length: Int?) {
        open.append(Open(kind: kind, length: length))
        closeCompleted()
    }

    /// ReplySet*Length: the innermost postponed aggregate of `kind` gets its length.
    mutating func setLength(_ kind: AggregateKind, _ n: Int) {
        guard let i = open.lastIndex(where: { $0.length == nil && $0.kind == kind }) else { return }
        open[i].length = n
        if i == open.count - 1 { closeCompleted() }
    }

    private mutating func closeCompleted() {
        while let top = open.last, let n = top.expected, top.items.count >= n {
            open.removeLast()
            add(.aggregate(top.kind, top.items))
        }
    }

    /// Takes the complete replies, leaving any aggregate still open.
    mutating func takeComplete() -> [Reply] {
        defer { replies = [] }
        return replies
    }

    /// Writes everything complete, then (a module bug) any aggregate left open as it stands.
    mutating func write(to w: ReplyWriter) {
        while let top = open.popLast() { add(.aggregate(top.kind, top.items)) }
        for r in replies { ModuleReplyBuilder.write(r, to: w) }
        replies = []
    }

    static func write(_ r: Reply, to w: ReplyWriter) {
        switch r {
        case .integer(let v): w.integer(v)
        case .double(let d): w.double(d)
        case .bool(let b): w.boolean(b)
        case .simple(let s): w.simple(s)
        case .error(let e): w.error(e)
        case .bulk(let b): w.bulk(b)
        case .verbatim(let b): w.verbatim(b.string)
        case .null: w.null()
        case .nullArray: w.nullArray()
        case .aggregate(let kind, let items):
            switch kind {
            case .array: w.arrayHeader(items.count)
            case .map: w.mapHeader(items.count / 2)
            case .set: w.setHeader(items.count)
            }
            for item in items { write(item, to: w) }
        case .value(let v): writeValue(v, to: w)
        }
    }

    /// A parsed reply (from Call) in the writer's protocol.
    static func writeValue(_ v: RESPValue, to w: ReplyWriter) {
        switch v {
        case .simple(let s): w.simple(s)
        case .error(let e): w.error(e)
        case .integer(let i): w.integer(i)
        case .bulk(let b): w.bulk(b)
        case .null: w.null()
        case .array(let items), .push(let items):
            w.arrayHeader(items.count)
            for i in items { writeValue(i, to: w) }
        case .set(let items):
            w.setHeader(items.count)
            for i in items { writeValue(i, to: w) }
        case .map(let pairs):
            w.mapHeader(pairs.count)
            for (k, x) in pairs { writeValue(k, to: w); writeValue(x, to: w) }
        case .double(let d): w.double(d)
        case .boolean(let b): w.boolean(b)
        case .verbatim(let s): w.verbatim(s)
        }
    }
}
