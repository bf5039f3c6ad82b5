import Engine
import CModuleHost
import Commands
import Keyspace
import RESP
#if canImport(Glibc)
import Glibc
#endif

/// The module API's functions, registered by name with the C host once per process.
/// Each family lives in the file of the type it works on; this file has the core calls
/// and the replies.
enum ModuleAPI {
    static let ok: Int32 = 0
    static let err: Int32 = 1

    /// The one server of this process, for the few calls that carry no context.
    nonisolated(unsafe) static var server: Server?
    nonisolated(unsafe) private static var registered = false

    /// Registers every function (once) and remembers the server.
    static func install(for server: Server) {
        ModuleAPI.server = server
        guard !registered else { return }
        registered = true
        berth_module_set_helpers(BerthModuleHelpers(
            create_string: { c, p, n in
                ModuleString.create(UnsafeRawBufferPointer(start: p, count: n), in: c.map(ModuleContext.from))
            },
            string_ptr: { s, len in ModuleAPI.stringPtrLen(s, len) },
            reply_error: { c, m in
                ModuleContext.from(c).reply.add(.error(String(cString: m!)))
                return ModuleAPI.ok
            },
            log: { c, level, m in ModuleAPI.log(c.map(ModuleContext.from), String(cString: level!), String(cString: m!)) },
            call: { c, cmd, flags, argv, lens, argc in
                ModuleCall.call(ModuleContext.from(c), command: cmd!, flags: flags!, argv: argv!, lengths: lens!, count: Int(argc))
            },
            missing_api: { name in ModuleMissingAPIs.asked(String(cString: name!)) },
            replicate: { c, cmd, argv, lens, argc in
                var args = [Bytes(String(cString: cmd!))]
                for i in 0..<Int(argc) { args.append(Bytes(UnsafeRawBufferPointer(start: argv![i], count: lens![i]))) }
                return ModuleReplication.replicate(ModuleContext.from(c), args)
            }))
        registerCore()
        registerReplies()
        registerStrings()
        registerCall()
        registerKeys()
        registerBlocking()
        registerThreads()
        registerTypes()
        registerTypeIO()
        registerTimers()
        registerYield()
        registerReplication()
    }

    static func register<F>(_ name: StaticString, _ fn: F) {
        precondition(MemoryLayout<F>.size == MemoryLayout<UnsafeMutableRawPointer>.size)
        name.withUTF8Buffer { buf in
            buf.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buf.count + 1) {
                berth_module_register($0, unsafeBitCast(fn, to: UnsafeMutableRawPointer.self))
            }
        }
    }

    static func log(_ ctx: ModuleContext?, _ level: String, _ message: String) {
        guard let server = ctx?.server ?? ModuleAPI.server else { return }
        let who = ctx?.module.name ?? "module"
        switch level {
        case "debug": server.log.debug("<\(who)> \(message)")
        case "verbose": server.log.info("<\(who)> \(message)")
        case "warning": server.log.warning("<\(who)> \(message)")
        default: server.log.notice("<\(who)> \(message)")
        }
    }

    private static func registerCore() {
        register("Alloc", { n in malloc(n) } as @convention(c) (Int) -> RawPointer)
        register("Calloc", { n, size in calloc(n, size) } as @convention(c) (Int, Int) -> RawPointer)
        register("Realloc", { p, n in realloc(p, n) } as @convention(c) (RawPointer, Int) -> RawPointer)
        register("Free", { p in free(p) } as @convention(c) (RawPointer) -> Void)
        register("Strdup", { s in strdup(s!) } as @convention(c) (UnsafePointer<CChar>?) -> UnsafeMutablePointer<CChar>?)
        register("Milliseconds", { Int64(ShardStore.nowMilliseconds()) } as @convention(c) () -> Int64)
        register("MonotonicMicroseconds", { UInt64(monotonicMicroseconds()) } as @convention(c) () -> UInt64)
        register("SetModuleAttribs", { c, name, ver, _ in
            let ctx = ModuleContext.from(c)
            ctx.module.name = String(cString: name!)
            ctx.module.version = Int(ver)
        } as @convention(c) (RawPointer, UnsafePointer<CChar>?, Int32, Int32) -> Void)
        register("IsModuleNameBusy", { name in
            (ModuleAPI.server?.modules.isNameBusy(String(cString: name!)) ?? false) ? 1 : 0
        } as @convention(c) (UnsafePointer<CChar>?) -> Int32)
        register("CreateCommand", { c, name, fn, flags, first, last, step in
            ModuleCommands.create(ModuleContext.from(c), name: String(cString: name!), function: fn.map { .c($0) },
                                  flags: flags.map { String(cString: $0) } ?? "", keys: (Int(first), Int(last), Int(step)))
        } as @convention(c) (RawPointer, UnsafePointer<CChar>?, ModuleCommand.Function?, UnsafePointer<CChar>?, Int32, Int32, Int32) -> Int32)
        register("GetCommand", { c, name in
            guard let command = ModuleContext.from(c).server.modules.command(named: Bytes(String(cString: name!))) else { return nil }
            return Unmanaged.passUnretained(command).toOpaque()
        } as @convention(c) (RawPointer, UnsafePointer<CChar>?) -> RawPointer)
        register("WrongArity", { c in
            let ctx = ModuleContext.from(c)
            ctx.reply.add(.error(CommandError.wrongArity(ctx.commandName).message))
            return ModuleAPI.ok
        } as @convention(c) (RawPointer) -> Int32)
        register("GetClientId", { c in UInt64(ModuleContext.from(c).clientID) } as @convention(c) (RawPointer) -> UInt64)
        register("GetSelectedDb", { c in Int32(ModuleContext.from(c).db) } as @convention(c) (RawPointer) -> Int32)
        register("SelectDb", { c, db in
            let ctx = ModuleContext.from(c)
            guard db >= 0, Int(db) < ctx.server.databaseCount else { return ModuleAPI.err }
            ctx.db = Int(db)
            return ModuleAPI.ok
        } as @convention(c) (RawPointer, Int32) -> Int32)
        register("GetContextFlags", { c in
            guard let c else { return 1 << 2 }
            let ctx = ModuleContext.from(c)
            var flags: Int32 = 1 << 2  // master
            if ctx.protocolVersion == 3 { flags |= 1 << 22 }
            if ctx.denyBlocking { flags |= 1 << 21 }
            if ctx.inMulti { flags |= 1 << 1 }
            return flags
        } as @convention(c) (RawPointer) -> Int32)
        register("GetContextFlagsAll", { ModuleAPI.supportedContextFlags } as @convention(c) () -> Int32)
        register("AutoMemory", { c in ModuleContext.from(c).autoMemory = true } as @convention(c) (RawPointer) -> Void)
        register("_Assert", { expression, file, line in
            // Redis's ValkeyModule_Assert: a failed assertion in a module stops the server.
            let text = "module assertion failed: \(String(cString: expression!)) (\(String(cString: file!)):\(line))"
            ModuleAPI.server?.log.warning("\(text)")
            _ = text.withCString { write(2, $0, strlen($0)) }
            abort()
        } as @convention(c) (UnsafePointer<CChar>?, UnsafePointer<CChar>?, Int32) -> Void)
    }

    /// The GetContextFlags bits Berth can report (GetContextFlagsAll): MULTI, MASTER,
    /// DENY_BLOCKING and RESP3. The others (replica, loading, OOM, AOF/RDB, ...) never apply.
    static let supportedContextFlags: Int32 = (1 << 1) | (1 << 2) | (1 << 21) | (1 << 22)

    private static func add(_ c: RawPointer, _ r: ModuleReplyBuilder.Reply) -> Int32 {
        ModuleContext.from(c).reply.add(r)
        return ModuleAPI.ok
    }

    private static func bulk(_ p: UnsafePointer<CChar>?, _ n: Int) -> Bytes { Bytes(UnsafeRawBufferPointer(start: p, count: n)) }

    private static func begin(_ c: RawPointer, _ kind: ModuleReplyBuilder.AggregateKind, _ n: Int) -> Int32 {
        ModuleContext.from(c).reply.begin(kind, length: n < 0 ? nil : n)
        return ModuleAPI.ok
    }

    private static func registerReplies() {
        register("ReplyWithLongLong", { c, v in ModuleAPI.add(c, .integer(Int(v))) } as @convention(c) (RawPointer, Int64) -> Int32)
        register("ReplyWithDouble", { c, d in ModuleAPI.add(c, .double(d)) } as @convention(c) (RawPointer, Double) -> Int32)
        register("ReplyWithBool", { c, b in ModuleAPI.add(c, .bool(b != 0)) } as @convention(c) (RawPointer, Int32) -> Int32)
        register("ReplyWithSimpleString", { c, s in ModuleAPI.add(c, .simple(String(cString: s!))) } as @convention(c) (RawPointer, UnsafePointer<CChar>?) -> Int32)
        register("ReplyWithError", { c, s in ModuleAPI.add(c, .error(String(cString: s!))) } as @convention(c) (RawPointer, UnsafePointer<CChar>?) -> Int32)
        register("ReplyWithString", { c, s in ModuleAPI.add(c, .bulk(ModuleString.from(s).bytes)) } as @convention(c) (RawPointer, UnsafeRawPointer?) -> Int32)
        register("ReplyWithStringBuffer", { c, p, n in ModuleAPI.add(c, .bulk(ModuleAPI.bulk(p, n))) } as @convention(c) (RawPointer, UnsafePointer<CChar>?, Int) -> Int32)
        register("ReplyWithCString", { c, p in ModuleAPI.add(c, .bulk(ModuleAPI.bulk(p, strlen(p!)))) } as @convention(c) (RawPointer, UnsafePointer<CChar>?) -> Int32)
        register("ReplyWithEmptyString", { c in ModuleAPI.add(c, .bulk(Bytes())) } as @convention(c) (RawPointer) -> Int32)
        register("ReplyWithVerbatimString", { c, p, n in ModuleAPI.add(c, .verbatim(ModuleAPI.bulk(p, n))) } as @convention(c) (RawPointer, UnsafePointer<CChar>?, Int) -> Int32)
        register("ReplyWithNull", { c in ModuleAPI.add(c, .null) } as @convention(c) (RawPointer) -> Int32)
        register("ReplyWithNullArray", { c in ModuleAPI.add(c, .nullArray) } as @convention(c) (RawPointer) -> Int32)
        register("ReplyWithEmptyArray", { c in ModuleAPI.add(c, .aggregate(.array, [])) } as @convention(c) (RawPointer) -> Int32)
        register("ReplyWithArray", { c, n in ModuleAPI.begin(c, .array, n) } as @convention(c) (RawPointer, Int) -> Int32)
        register("ReplyWithMap", { c, n in ModuleAPI.begin(c, .map, n) } as @convention(c) (RawPointer, Int) -> Int32)
        register("ReplyWithSet", { c, n in ModuleAPI.begin(c, .set, n) } as @convention(c) (RawPointer, Int) -> Int32)
        register("ReplySetArrayLength", { c, n in ModuleContext.from(c).reply.setLength(.array, n) } as @convention(c) (RawPointer, Int) -> Void)
        register("ReplySetMapLength", { c, n in ModuleContext.from(c).reply.setLength(.map, n) } as @convention(c) (RawPointer, Int) -> Void)
        register("ReplySetSetLength", { c, n in ModuleContext.from(c).reply.setLength(.set, n) } as @convention(c) (RawPointer, Int) -> Void)
        register("ReplyWithCallReply", { c, r in ModuleAPI.add(c, .value(CallReply.from(r).value)) } as @convention(c) (RawPointer, RawPointer) -> Int32)
    }
}
