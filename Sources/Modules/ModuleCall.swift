import Engine
import Commands
import Keyspace
import RESP
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// `RedisModuleCallReply`: a parsed reply of RedisModule_Call.
///
/// Invariants: only top-level replies are handed to the module with a reference of their
/// own (released by FreeCallReply or auto-memory); elements are owned by their parent,
/// created on first access, and FreeCallReply on one of them does nothing, as in Redis.
final class CallReply {
    let value: RESPValue
    let isTopLevel: Bool
    /// FreeCallReply gave back the module's reference (auto-memory then leaves it alone).
    var released = false
    private var elements: [Int: CallReply] = [:]
    private var text: UnsafeMutablePointer<CChar>?
    private var textCount = 0

    init(_ value: RESPValue, topLevel: Bool) {
        self.value = value
        isTopLevel = topLevel
    }

    deinit { text?.deallocate() }

    static func from(_ p: UnsafeMutableRawPointer?) -> CallReply {
        Unmanaged<CallReply>.fromOpaque(p!).takeUnretainedValue()
    }

    var type: Int32 {
        switch value {
        case .bulk, .simple: return 0
        case .error: return 1
        case .integer: return 2
        case .array, .push: return 3
        case .null: return 4
        case .map: return 5
        case .set: return 6
        case .boolean: return 7
        case .double: return 8
        case .verbatim: return 10
        }
    }

    var length: Int {
        switch value {
        case .array(let a), .set(let a), .push(let a): return a.count
        case .map(let m): return m.count
        case .bulk(let b): return b.count
        case .simple(let s), .error(let s), .verbatim(let s): return s.utf8.count
        default: return 0
        }
    }

    /// Child `i` of an array or set; for maps, `2i` is a key and `2i + 1` its value.
    func element(_ i: Int) -> CallReply? {
        if let e = elements[i] { return e }
        let v: RESPValue
        switch value {
        case .array(let a) where i < a.count: v = a[i]
        case .set(let a) where i < a.count: v = a[i]
        case .push(let a) where i < a.count: v = a[i]
        case .map(let m) where i / 2 < m.count: v = i % 2 == 0 ? m[i / 2].0 : m[i / 2].1
        default: return nil
        }
        let e = CallReply(v, topLevel: false)
        elements[i] = e
        return e
    }

    /// The bytes of a string or error reply, NUL-terminated, valid while this reply lives.
    func stringPointer(_ len: UnsafeMutablePointer<Int>?) -> UnsafePointer<CChar>? {
        if text == nil {
            let bytes: Bytes
            switch value {
            case .bulk(let b): bytes = b
            case .simple(let s), .error(let s), .verbatim(let s): bytes = Bytes(s)
            default: len?.pointee = 0; return nil
            }
            text = cStringCopy(bytes)
            textCount = bytes.count
        }
        len?.pointee = textCount
        return UnsafePointer(text)
    }
}

/// RedisModule_Call: runs a command inside the module's atomic section.
enum ModuleCall {
    /// Why a command was not run: errno for the C API, and the error reply the `E` flag asks for.
    struct Refusal: Error {
        let code: Int32
        let message: String
    }

    static func call(_ ctx: ModuleContext, command: UnsafePointer<CChar>, flags: UnsafePointer<CChar>,
                     argv: UnsafePointer<UnsafePointer<CChar>?>, lengths: UnsafePointer<Int>, count: Int) -> UnsafeMutableRawPointer? {
        let flagSet = Set(String(cString: flags))
        var args = [Bytes(String(cString: command))]
        for i in 0..<count { args.append(Bytes(UnsafeRawBufferPointer(start: argv[i], count: lengths[i]))) }
        switch run(ctx, args, flags: flagSet) {
        case .success(let value):
            return hand(ctx, value)
        case .failure(let refusal):
            errno = refusal.code
            return flagSet.contains("E") ? hand(ctx, .error(refusal.message)) : nil
        }
    }

    /// Runs `args` (command name first) with RedisModule_Call's flags (`3`, `0`, `W`).
    static func run(_ ctx: ModuleContext, _ args: [Bytes], flags: Set<Character>) -> Result<RESPValue, Refusal> {
        let resp3 = flags.contains("3") || (flags.contains("0") && ctx.protocolVersion == 3)
        let server = ctx.server
        guard let spec = server.commands.lookup(args[0]) ?? server.modules.command(named: args[0])?.spec else {
            return .failure(Refusal(code: ENOENT, message: Shard.unknownCommandMessage(args)))
        }
        guard spec.arityMatches(args.count) else {
            return .failure(Refusal(code: EINVAL, message: CommandError.wrongArity(spec.name).message))
        }
        if flags.contains("W") && spec.flags.contains(.write) {
            return .failure(Refusal(code: ENOSPC, message: "ERR Write command '\(spec.name)' was called while write is not allowed."))
        }
        if let refusal = refusedForDenyBlocking(spec.name) { return .failure(refusal) }
        let start = monotonicMicroseconds()
        let result = execute(ctx, spec, args, resp3: resp3, replicating: flags.contains("!"))
        recordStats(ctx, spec, args, result, microseconds: monotonicMicroseconds() - start)
        return result
    }

    /// Runs a command that passed Call's checks, by its kind.
    /// A data command's writes join the effect stream only with Call's "!" flag, as in
    /// Redis (a module replicates the rest itself, with Replicate or ReplicateVerbatim).
    private static func execute(_ ctx: ModuleContext, _ spec: CommandSpec, _ args: [Bytes], resp3: Bool,
                                replicating: Bool) -> Result<RESPValue, Refusal> {
        if spec.flags.contains(.module) { return callModuleCommand(ctx, spec, args, resp3: resp3) }
        guard spec.handler != nil else { return callEngineCommand(ctx, spec, args, resp3: resp3) }
        let out = ModuleKey.withLocks(ctx) { cc in
            let suppressed = cc.effectsSuppressed
            cc.effectsSuppressed = suppressed || !replicating
            defer { cc.effectsSuppressed = suppressed }
            return ctx.server.runNested(spec, args, in: cc, db: ctx.db, protocolVersion: resp3 ? 3 : 2, countingErrors: false)
        }
        guard let value = RESPReplyParser.parse(out) else {
            return .failure(Refusal(code: EINVAL, message: "ERR unreadable reply"))
        }
        return .success(value)
    }

    /// A command Call ran counts in INFO commandstats (calls, time, failed_calls) and the
    /// latency histogram as one a client ran, as in Redis (CallRecords.swift).
    private static func recordStats(_ ctx: ModuleContext, _ spec: CommandSpec, _ args: [Bytes],
                                    _ result: Result<RESPValue, Refusal>, microseconds: Int) {
        guard case .success(let value) = result else { return }
        let failed: Bool
        if case .error = value { failed = true } else { failed = false }
        ctx.server.record(CallRecord(spec, args, db: ctx.db, microseconds: microseconds, failed: failed,
                                     slowlogCaller: nil, samplesLatency: true, monitorPeer: nil), on: ctx.shard)
    }

    /// Commands that would make the calling client wait for pushes, which a Call's client
    /// can never do (Redis's DENY BLOCKING client).
    private static func refusedForDenyBlocking(_ name: String) -> Refusal? {
        switch name {
        case "monitor": return Refusal(code: EINVAL, message: "ERR MONITOR isn't allowed for DENY BLOCKING client")
        case "subscribe", "psubscribe", "ssubscribe":
            return Refusal(code: EINVAL, message: "ERR \(name.uppercased()) isn't allowed for a DENY BLOCKING client")
        default: return nil
        }
    }

    /// A module command called through Call: its callback runs at once, inside the
    /// caller's atomic section, with a context that may not block (BlockClient answers
    /// NULL, GetContextFlags reports DENY_BLOCKING); its reply is parsed like any other.
    private static func callModuleCommand(_ ctx: ModuleContext, _ spec: CommandSpec, _ args: [Bytes], resp3: Bool) -> Result<RESPValue, Refusal> {
        guard let command = ctx.server.modules.command(id: spec.id) else {
            return .failure(Refusal(code: ENOENT, message: "ERR Unknown Redis command '\(args[0].string)'."))
        }
        let out = ModuleKey.withLocks(ctx) { _ -> IOBuffer in
            let nested = ModuleContext(kind: .command, module: command.module, server: ctx.server, shard: ctx.shard,
                                       clientID: ctx.clientID, db: ctx.db, protocolVersion: resp3 ? 3 : 2, holdsLocks: true)
            nested.commandName = spec.name
            nested.commandID = spec.id
            nested.denyBlocking = true
            nested.sectionStart = ctx.sectionStart > 0 ? ctx.sectionStart : monotonicMicroseconds()
            _ = command.body.run(nested, arguments: args)
            ModuleYield.sectionEnded(nested)
            let buffer = IOBuffer(capacity: 64)
            nested.reply.write(to: ReplyWriter(buffer: buffer, protocolVersion: resp3 ? 3 : 2, countsErrors: false))
            nested.close()
            return buffer
        }
        guard let value = RESPReplyParser.parse(out) else {
            return .failure(Refusal(code: EINVAL, message: "ERR unreadable reply"))
        }
        return .success(value)
    }

    /// Engine commands Call may run: they touch no connection state and only server-wide
    /// state that any thread may use (CONFIG's settings are atomics, RESETSTAT posts to
    /// each shard), so they are safe from a shard thread inside a section and from a
    /// module thread alike. The others act on the calling connection or gather from every
    /// shard (CLIENT, INFO, MULTI, ...) and answer ENOTSUP.
    private static let engineCommandsForCall: Set<String> = ["ping", "echo", "time", "config"]

    /// An engine command through Call runs its own handler, with a connection of its own
    /// that nothing else sees, so its replies and errors are the command's own.
    private static func callEngineCommand(_ ctx: ModuleContext, _ spec: CommandSpec, _ args: [Bytes], resp3: Bool) -> Result<RESPValue, Refusal> {
        let server = ctx.server
        guard engineCommandsForCall.contains(spec.name), let handler = server.engineCommands[spec.id] else {
            return .failure(Refusal(code: ENOTSUP, message: "ERR command '\(spec.name)' is not available to modules in Berth"))
        }
        let version = resp3 ? 3 : 2
        let out = IOBuffer(capacity: 64)
        let conn = Connection(id: ctx.clientID, fd: FileDescriptor(rawValue: -1), peer: "", local: "", authenticated: true,
                              maxBulkLength: server.config.maxBulkLength.load(ordering: .relaxed), now: 0)
        conn.protocolVersion = version
        _ = handler(ctx.shard ?? server.shards[0], conn, args, ReplyWriter(buffer: out, protocolVersion: version, countsErrors: false))
        guard let value = RESPReplyParser.parse(out) else {
            return .failure(Refusal(code: EINVAL, message: "ERR unreadable reply"))
        }
        return .success(value)
    }

    /// A new top-level reply for the module: one reference, or auto-memory's.
    static func hand(_ ctx: ModuleContext, _ value: RESPValue) -> UnsafeMutableRawPointer {
        let reply = CallReply(value, topLevel: true)
        if ctx.autoMemory { ctx.autoCallReplies.append(reply) }
        return Unmanaged.passRetained(reply).toOpaque()
    }
}

extension ModuleAPI {
    static func registerCall() {
        register("CallReplyType", { r in r == nil ? -1 : CallReply.from(r).type } as @convention(c) (RawPointer) -> Int32)
        register("CallReplyLength", { r in r == nil ? 0 : CallReply.from(r).length } as @convention(c) (RawPointer) -> Int)
        register("CallReplyArrayElement", { r, i in
            guard let r, let e = CallReply.from(r).element(i) else { return nil }
            return Unmanaged.passUnretained(e).toOpaque()
        } as @convention(c) (RawPointer, Int) -> RawPointer)
        register("CallReplySetElement", { r, i in
            guard let r, let e = CallReply.from(r).element(i) else { return nil }
            return Unmanaged.passUnretained(e).toOpaque()
        } as @convention(c) (RawPointer, Int) -> RawPointer)
        register("CallReplyMapElement", { r, i, k, v in
            guard let r, case .map = CallReply.from(r).value, let key = CallReply.from(r).element(2 * i),
                  let val = CallReply.from(r).element(2 * i + 1) else { return ModuleAPI.err }
            k?.pointee = Unmanaged.passUnretained(key).toOpaque()
            v?.pointee = Unmanaged.passUnretained(val).toOpaque()
            return ModuleAPI.ok
        } as @convention(c) (RawPointer, Int, UnsafeMutablePointer<RawPointer>?, UnsafeMutablePointer<RawPointer>?) -> Int32)
        register("CallReplyInteger", { r in
            guard let r, case .integer(let v) = CallReply.from(r).value else { return Int64.min }
            return Int64(v)
        } as @convention(c) (RawPointer) -> Int64)
        register("CallReplyDouble", { r in
            guard let r, case .double(let d) = CallReply.from(r).value else { return 0 }
            return d
        } as @convention(c) (RawPointer) -> Double)
        register("CallReplyBool", { r in
            guard let r, case .boolean(let b) = CallReply.from(r).value else { return 0 }
            return b ? 1 : 0
        } as @convention(c) (RawPointer) -> Int32)
        register("CallReplyStringPtr", { r, len in
            guard let r else { len?.pointee = 0; return nil }
            return CallReply.from(r).stringPointer(len)
        } as @convention(c) (RawPointer, UnsafeMutablePointer<Int>?) -> UnsafePointer<CChar>?)
        register("CreateStringFromCallReply", { r in
            guard let r else { return nil }
            let reply = CallReply.from(r)
            switch reply.value {
            case .bulk(let b): return ModuleString.create(b, in: nil)
            case .simple(let s), .error(let s), .verbatim(let s): return ModuleString.create(Bytes(s), in: nil)
            case .integer(let v): return ModuleString.create(Bytes(v), in: nil)
            default: return nil
            }
        } as @convention(c) (RawPointer) -> RawPointer)
        register("FreeCallReply", { r in
            guard let r else { return }
            let reply = CallReply.from(r)
            guard reply.isTopLevel, !reply.released else { return }
            reply.released = true
            Unmanaged<CallReply>.fromOpaque(r).release()
        } as @convention(c) (RawPointer) -> Void)
    }
}
