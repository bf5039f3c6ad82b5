import Engine
import CLua
import Commands
import Keyspace
import RESP

/// One shard thread's Lua interpreter (see ScriptCache.swift for the mechanism).
///
/// Invariants: used only by its shard's thread; `generation` is the cache generation its
/// compiled scripts belong to.
final class ScriptHost {
    let lua: OpaquePointer
    private var generation = 0
    /// The FunctionLibraries generation whose libraries are installed here.
    var functionGeneration = -1

    init() {
        lua = berth_lua_new(ScriptHost.command, ScriptHost.log, ScriptHost.busy, Server.redisCompatibleVersion)
    }

    deinit { berth_lua_free(lua) }

    /// Drops compiled scripts when SCRIPT FLUSH happened since they were compiled.
    func sync(with cache: ScriptCache) {
        let g = cache.generation.load(ordering: .acquiring)
        if g != generation {
            berth_lua_flush(lua)
            generation = g
        }
    }

    /// Compiles `source` as script `sha` unless already there; the error reply bytes when
    /// it does not compile.
    func load(sha: String, source: Bytes) -> [UInt8]? {
        let status = source.withUnsafeBytes { raw in
            berth_lua_load(lua, sha, raw.baseAddress?.assumingMemoryBound(to: CChar.self), raw.count)
        }
        return status == 0 ? nil : result
    }

    var result: [UInt8] {
        var n = 0
        guard let p = berth_lua_result(lua, &n), n > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: n))
    }

    /// Runs script `sha` with `keys` and `args`; the reply is in `result`.
    func run(sha: String, keys: ArraySlice<Bytes>, args: ArraySlice<Bytes>, resp: Int, context: ScriptRun) -> ScriptOutcome {
        withArguments(keys: keys, args: args) { keyPointers, keyLengths, argPointers, argLengths in
            ScriptOutcome(rawValue: berth_lua_run(lua, sha, keyPointers, keyLengths, Int32(keys.count), argPointers, argLengths, Int32(args.count),
                          Int32(resp), Unmanaged.passUnretained(context).toOpaque())) ?? .failed
        }
    }

    /// Calls `body` with C pointer and length arrays for `keys` and then `args`.
    func withArguments<T>(keys: ArraySlice<Bytes>, args: ArraySlice<Bytes>,
                          _ body: (UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int>?,
                                   UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int>?) -> T) -> T {
        withCArguments(keys + args) { p, l in body(p, l, p.map { $0 + keys.count }, l.map { $0 + keys.count }) }
    }

    /// redis.call / redis.pcall: run one command for the script that is running.
    private static let command: BerthLuaCommand = { ctx, argv, lengths, argc, resp, out in
        let run = Unmanaged<ScriptRun>.fromOpaque(ctx!).takeUnretainedValue()
        var args: [Bytes] = []
        for i in 0..<Int(argc) { args.append(Bytes(UnsafeRawBufferPointer(start: argv![i], count: lengths![i]))) }
        guard let reply = run.call(args, protocolVersion: Int(resp)) else { return -2 }
        reply.withUnsafeBytes { berth_lua_reply_append(out, $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count) }
        return 0
    }

    /// The 100,000-instruction check: announce a script past busy-reply-threshold, serve
    /// the shard's other clients from then on, and stop it when SCRIPT KILL / FUNCTION
    /// KILL asked.
    private static let busy: BerthLuaBusy = { ctx in
        let run = Unmanaged<ScriptRun>.fromOpaque(ctx!).takeUnretainedValue()
        let server = run.shard.server
        if !run.announced {
            guard monotonicMicroseconds() / 1000 - run.startedAt >= server.config.busyReplyThreshold.load(ordering: .relaxed) else {
                return 0
            }
            run.announced = true
            server.scriptBusy.wrote.store(run.wrote, ordering: .relaxed)
            if run.isFunction { server.scriptBusy.announceFunction(run.command, startedAt: run.startedAt) }
            server.scriptBusy.running.store(run.isFunction ? 2 : 1, ordering: .releasing)
            server.log.warning("Slow script detected: still in execution after \(server.config.busyReplyThreshold.load(ordering: .relaxed)) milliseconds. You can try killing the script using the \(run.isFunction ? "FUNCTION" : "SCRIPT") KILL command.")
        }
        run.shard.serveOthersWhileBusy()
        return server.scriptBusy.kill.load(ordering: .acquiring) ? (run.isFunction ? 2 : 1) : 0
    }

    private static let log: BerthLuaLog = { ctx, level, message, length in
        let run = Unmanaged<ScriptRun>.fromOpaque(ctx!).takeUnretainedValue()
        let text = String(decoding: UnsafeRawBufferPointer(start: message, count: length), as: UTF8.self)
        run.log(level, text)
    }
}

/// The script being run: where redis.call's commands go, what they may do, and which
/// shard locks it holds.
///
/// Invariants: used only by the thread running the script; `held` is exactly the set of
/// shard locks that thread holds for it; `wrote` never goes back to false.
final class ScriptRun {
    unowned let shard: Shard
    let db: Int
    let readOnly: Bool
    let isFunction: Bool
    /// Monotonic milliseconds at the start, for busy-reply-threshold.
    let startedAt = monotonicMicroseconds() / 1000
    /// A write command ran: SCRIPT KILL can no longer stop it.
    var wrote = false
    /// A script without flags that started while the server was out of memory: its
    /// commands that may grow memory are refused until it has written (after a first
    /// write Redis lets it finish, rather than stop it halfway).
    var refusesGrowth = false
    /// The FCALL that runs a function, for FUNCTION STATS once the run is announced.
    var command: [Bytes] = []
    /// The calling client's address and name: the commands the script runs are logged
    /// in SLOWLOG under them (as Valkey logs them).
    var caller: (peer: String, name: String) = ("", "")
    /// The calling client: each command the script runs counts in its tot-cmds, as Redis counts it.
    weak var connection: Connection?
    /// Past busy-reply-threshold and announced in `server.scriptBusy`.
    var announced = false
    /// The shard locks the script holds (ScriptSection.swift).
    var held = ShardLockSet()
    /// redis.log lines written while the run might still be abandoned and started again
    /// (ScriptSection.swift): they reach the log only once it no longer can, so a restarted
    /// script logs each line once.
    private var heldLog: [(level: Int32, text: String)] = []

    init(shard: Shard, db: Int, readOnly: Bool, isFunction: Bool = false) {
        self.shard = shard
        self.db = db
        self.readOnly = readOnly
        self.isFunction = isFunction
    }

    /// The script ended: others may run again.
    func finish() {
        flushLog()
        if announced { shard.server.scriptBusy.clear() }
    }

    /// Whether the run may still be abandoned and started again over every shard: it has
    /// not written, and there is a shard it does not hold.
    private var mayRestart: Bool { !wrote && held.count < shard.server.shards.count }

    /// A redis.log line, held back while the run may restart.
    func log(_ level: Int32, _ text: String) {
        if mayRestart {
            heldLog.append((level, text))
            return
        }
        flushLog()
        emit(level, text)
    }

    /// The run is abandoned: what it logged will be logged again by the next run.
    func forgetHeldLog() { heldLog.removeAll() }

    private func flushLog() {
        for line in heldLog { emit(line.level, line.text) }
        heldLog.removeAll()
    }

    private func emit(_ level: Int32, _ text: String) {
        let log = shard.server.log
        switch level {
        case 0: log.debug("<script> \(text)")
        case 1: log.info("<script> \(text)")
        case 3: log.warning("<script> \(text)")
        default: log.notice("<script> \(text)")
        }
    }

    /// The reply of `args` (RESP2, or RESP3 after redis.setresp(3)) run under the script's
    /// locks, or Redis's refusal; nil when the script must start again over every shard.
    func call(_ args: [Bytes], protocolVersion: Int) -> [UInt8]? {
        let server = shard.server
        func refuse(_ message: String) -> [UInt8] { Array("-\(message)\r\n".utf8) }
        guard let spec = server.commands.lookup(args[0]) else { return refuse("ERR Unknown Redis command called from script") }
        guard spec.arityMatches(args.count) else { return refuse("ERR Wrong number of args calling Redis command from script") }
        if Self.isNoScript(spec, args) { return refuse("ERR This Redis command is not allowed from script") }
        if spec.name == "publish" || spec.name == "spublish" {
            // May replicate, so a read-only script may not (Redis's rule); delivered to this
            // shard's subscribers after the script's reply.
            if readOnly { return refuse("ERR Write commands are not allowed from read-only scripts.") }
            let started = monotonicMicroseconds()
            let receivers = shard.publish(args[1], args[2], sharded: spec.name == "spublish", deferOwn: true)
            let reply = Array(":\(receivers)\r\n".utf8)
            afterNestedCommand(spec, args, reply, since: started)
            return reply
        }
        guard spec.handler != nil else {
            let started = monotonicMicroseconds()
            guard let reply = server.connectionFreeReply(spec, args, protocolVersion: protocolVersion) else {
                return refuse("ERR This Redis command is not allowed from script")
            }
            afterNestedCommand(spec, args, reply, since: started)
            return reply
        }
        if readOnly && spec.flags.contains(.write) {
            return refuse("ERR Write commands are not allowed from read-only scripts.")
        }
        if refusesGrowth && !wrote && spec.flags.contains(.denyOOM) {
            return refuse("OOM command not allowed when used memory > 'maxmemory'.")
        }
        guard cover(spec, args) else { return nil }
        if spec.flags.contains(.write) && !wrote {
            wrote = true
            if announced { server.scriptBusy.wrote.store(true, ordering: .relaxed) }
        }
        let started = monotonicMicroseconds()
        let context = shard.context
        let suppressed = context.effectsSuppressed  // by a module's Call without "!", around the script
        context.inScript = true
        context.effectsSuppressed = suppressed || berth_lua_replication(shard.scriptHost.lua) == 0  // redis.set_repl
        let reply = server.runNested(spec, args, in: context, db: db, protocolVersion: protocolVersion).readableArray
        context.inScript = false
        context.effectsSuppressed = suppressed
        afterNestedCommand(spec, args, reply, since: started)
        return reply
    }

    /// Commands Redis flags `noscript` (MULTI, WATCH, CLIENT and CONFIG subcommands, ...):
    /// a script gets an error, not a reply. Blocking commands are not among them: Redis 7.0
    /// refused BLPOP and WAIT in scripts, Redis 7.2 and Valkey run them as their
    /// non-blocking forms (XREAD BLOCK too, as Valkey and Redis 7.4), and so does Berth
    /// (docs/compatibility.md).
    static func isNoScript(_ spec: CommandSpec, _ args: [Bytes]) -> Bool {
        if spec.flags.contains(.blocking) { return false }
        if RedisCommandMetadata.byName[spec.name]?.flags.contains("noscript") == true { return true }
        guard !spec.subcommands.isEmpty, args.count > 1 else { return false }
        return RedisCommandMetadata.byName["\(spec.name)|\(args[1].string.lowercased())"]?.flags.contains("noscript") == true
    }

    /// A command the script ran counts in commandstats, goes to SLOWLOG under the calling
    /// client (as Valkey logs it) and to MONITOR as "lua" (CallRecords.swift), and counts in
    /// the client's tot-cmds.
    private func afterNestedCommand(_ spec: CommandSpec, _ args: [Bytes], _ reply: [UInt8], since started: Int) {
        connection?.commandsRun += 1
        shard.record(CallRecord(spec, args, db: db, microseconds: monotonicMicroseconds() - started,
                                failed: reply.first == UInt8(ascii: "-"),
                                slowlogCaller: CallCaller(peer: caller.peer, name: caller.name), monitorPeer: "lua"))
    }
}
