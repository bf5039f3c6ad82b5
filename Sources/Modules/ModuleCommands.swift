import Engine
import Commands
import Keyspace
import RESP
#if canImport(Glibc)
import Glibc
#endif

/// Module loading, CreateCommand, running module commands, and the MODULE command.
enum ModuleCommands {
    /// RedisModule_CreateCommand flags, as Redis spells them, and what Berth makes of them.
    private static let flagNames: [String: CommandFlags] = [
        "write": .write, "readonly": .readonly, "admin": .admin, "deny-oom": .denyOOM, "fast": .fast,
        "no-auth": .noAuth, "blocking": .blocking, "allow-loading": .loading, "allow-stale": .stale,
        "deny-script": [], "pubsub": [], "random": [], "no-monitor": [], "no-slowlog": [], "may-replicate": [],
        "getkeys-api": [], "no-cluster": [], "no-mandatory-keys": [], "allow-busy": .allowBusy, "no-commandstats": [],
    ]

    static func create(_ ctx: ModuleContext, name: String, function: ModuleCallback?, flags: String,
                       keys: (first: Int, last: Int, step: Int)) -> Int32 {
        guard ctx.kind == .load, let function, !name.isEmpty, !name.contains(" ") else { return ModuleAPI.err }
        var mapped: CommandFlags = [.engine, .module, .allShards]
        for word in flags.split(separator: " ") {
            guard let f = flagNames[String(word).lowercased()] else { return ModuleAPI.err }
            mapped.formUnion(f)
        }
        let server = ctx.server
        guard server.commands.lookup(Bytes(name)) == nil else { return ModuleAPI.err }
        let keySpec = keys.first > 0 ? KeySpec(keys.first, keys.last, max(1, keys.step)) : KeySpec.none
        let added = server.modules.addCommand(name, module: ctx.module, builtinCount: server.commands.count) { id in
            let spec = CommandSpec(name.lowercased(), arity: -1, flags: mapped, keys: keySpec)
            spec.assignID(id)
            return (spec, function)
        }
        return added ? ModuleAPI.ok : ModuleAPI.err
    }

    enum LoadError: Error, CustomStringConvertible {
        case message(String)
        var description: String { if case .message(let m) = self { return m }; return "" }
    }

    /// dlopens `path` and runs its OnLoad with `arguments`. Caller: start-up or MODULE LOAD.
    static func load(_ server: Server, path: String, arguments: [String]) throws(LoadError) -> Module {
        #if BERTH_STATIC_EXECUTABLE
        throw .message("Module \(path) not loaded: this berth-server is a fully static executable, which cannot host a module's shared libraries (build with STATIC_GLIBC=0 deploy/install.sh, or use a plain swift build)")
        #else
        ModuleAPI.install(for: server)
        if path.hasPrefix("swift:") { return try loadSwift(server, name: String(path.dropFirst(6)), arguments: arguments) }
        return try server.modules.whileLoading { () throws(LoadError) -> Module in
            guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
                throw .message("Module \(path) failed to load: \(String(cString: dlerror()))")
            }
            typealias OnLoad = @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, Int32) -> Int32
            guard let symbol = dlsym(handle, "ValkeyModule_OnLoad") ?? dlsym(handle, "RedisModule_OnLoad") else {
                dlclose(handle)
                throw .message("Module \(path) does not export RedisModule_OnLoad() or ValkeyModule_OnLoad()")
            }
            let onLoad = unsafeBitCast(symbol, to: OnLoad.self)
            let module = Module(path: path, handle: handle, arguments: arguments)
            let ctx = ModuleContext(kind: .load, module: module, server: server, shard: nil, clientID: 0, db: 0,
                                    protocolVersion: 2, holdsLocks: false)
            let argv = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: max(1, arguments.count))
            for (i, a) in arguments.enumerated() { argv[i] = Unmanaged.passRetained(ModuleString.make(Bytes(a))).toOpaque() }
            ModuleMissingAPIs.beginLoad()
            let status = onLoad(ctx.pointer, argv, Int32(arguments.count))
            ModuleMissingAPIs.endLoad(module: module.name)
            for i in 0..<arguments.count { Unmanaged<ModuleString>.fromOpaque(argv[i]!).release() }
            argv.deallocate()
            ctx.close()
            if status != ModuleAPI.ok || module.name.isEmpty {
                server.modules.discardCommands(of: module)
                dlclose(handle)
                throw .message("Module \(path) initialization failed. Module not loaded")
            }
            if server.modules.isNameBusy(module.name) {
                server.modules.discardCommands(of: module)
                dlclose(handle)
                throw .message("Module \(path) initialization failed: module name is busy (\(module.name))")
            }
            server.modules.add(module)
            server.log.notice("Module '\(module.name)' loaded from \(path)")
            return module
        }
        #endif
    }
}

extension ModuleCommands {
    /// Loads a Swift module the executable was built with (`swift:<name>`).
    static func loadSwift(_ server: Server, name: String, arguments: [String]) throws(LoadError) -> Module {
        guard let type = SwiftModules.named(name) else { throw .message("No Swift module named '\(name)' in this berth-server") }
        return try server.modules.whileLoading { () throws(LoadError) -> Module in
            guard !server.modules.isNameBusy(type.name) else { throw .message("Module swift:\(name): module name is busy") }
            let module = Module(path: "swift:\(name)", handle: nil, arguments: arguments)
            module.name = type.name
            module.version = type.version
            let ctx = ModuleContext(kind: .load, module: module, server: server, shard: nil, clientID: 0, db: 0,
                                    protocolVersion: 2, holdsLocks: false)
            defer { ctx.close() }
            do {
                try type.onLoad(SwiftModuleLoader(ctx: ctx), arguments: arguments)
            } catch {
                server.modules.discardCommands(of: module)
                throw .message("Module swift:\(name) initialization failed: \(error)")
            }
            server.modules.add(module)
            server.log.notice("Module '\(module.name)' loaded from swift:\(name)")
            return module
        }
    }
}

extension Shard {
    /// Runs a module's command as an atomic section over every shard, unless the caller
    /// (EXEC) already holds them all.
    func runModuleCommand(_ spec: CommandSpec, _ conn: Connection, _ args: [Bytes], _ reply: ReplyWriter, locksHeld: Bool) -> Bool {
        guard let command = server.modules.command(id: spec.id) else {
            reply.error("ERR unknown command '\(spec.name)'")
            return true
        }
        let allowBusy = spec.flags.contains(.allowBusy)
        while !locksHeld {
            // An allow-busy command runs inside a yielding module's section, whether the
            // section was announced before it came or while it waited for the locks.
            if allowBusy && server.scriptBusy.running.load(ordering: .acquiring) == 3,
               let failed = runInsideYieldingSection(spec, conn, args, reply) {
                return failed
            }
            if section.enter(section.everyShard, .refuseWhenBusy) { break }
            if !(allowBusy && server.scriptBusy.running.load(ordering: .acquiring) == 3) { return replyBusy(spec, args, reply) }
        }
        if !context.inTransaction { context.now = ShardStore.nowMilliseconds() }
        let ctx = ModuleContext(kind: .command, module: command.module, server: server, shard: self, clientID: conn.id,
                                db: conn.db, protocolVersion: conn.protocolVersion, holdsLocks: true)
        ctx.commandName = spec.name
        ctx.commandID = spec.id
        ctx.connection = conn
        ctx.arguments = args
        ctx.denyBlocking = conn.transaction != nil || context.inTransaction
        ctx.inMulti = ctx.denyBlocking
        ModuleYield.sectionBegan(ctx)
        // What the command replicates, and the writes it Calls with "!", form one block.
        context.beginEffectBatch()
        _ = command.body.run(ctx, arguments: args)
        context.endEffectBatch()
        ModuleYield.sectionEnded(ctx)
        conn.db = ctx.db
        registerModuleBlocks(ctx, conn)
        if !locksHeld {
            section.leave(section.everyShard)
            section.finish()
        }
        let failed = ctx.reply.isError
        ctx.reply.write(to: reply)
        ctx.close()
        return failed
    }

    /// An allow-busy module command while a module's operation yields (ModuleYield.swift):
    /// it runs inside that operation's section, on this thread. Nil when the operation
    /// ended before letting it in.
    private func runInsideYieldingSection(_ spec: CommandSpec, _ conn: Connection, _ args: [Bytes], _ reply: ReplyWriter) -> Bool? {
        let gate = server.moduleYieldGate
        if gate.isHolderThread { return runModuleCommand(spec, conn, args, reply, locksHeld: true) }
        guard gate.enter() else { return nil }
        defer { gate.leave() }
        return runModuleCommand(spec, conn, args, reply, locksHeld: true)
    }
}

/// MODULE LOAD / LOADEX / LIST / UNLOAD / HELP.
enum ModuleAdminCommand {
    static func run(_ shard: Shard, _ conn: Connection, _ args: [Bytes], _ reply: ReplyWriter) -> Bool {
        let server = shard.server
        let sub = args[1].string.lowercased()
        switch sub {
        case "load" where args.count >= 3:
            return reportLoad(server, path: args[2].string, arguments: args.dropFirst(3).map { $0.string }, reply)
        case "loadex" where args.count >= 3:
            var arguments: [String] = []
            let i = 3
            while i < args.count {
                let word = args[i].string.lowercased()
                if word == "args" { arguments += args[(i + 1)...].map { $0.string }; break }
                if word == "config" && i + 2 < args.count {
                    reply.error("ERR Error loading the extension. Please check the server logs.")
                    server.log.warning("MODULE LOADEX CONFIG: Berth has no module configuration parameters")
                    return true
                }
                reply.error("ERR syntax error")
                return true
            }
            return reportLoad(server, path: args[2].string, arguments: arguments, reply)
        case "list" where args.count == 2:
            let modules = server.modules.modules
            reply.arrayHeader(modules.count)
            for m in modules {
                reply.mapHeader(4)
                reply.bulk("name"); reply.bulk(m.name)
                reply.bulk("ver"); reply.integer(m.version)
                reply.bulk("path"); reply.bulk(m.path)
                reply.bulk("args"); reply.arrayHeader(m.arguments.count)
                for a in m.arguments { reply.bulk(a) }
            }
            return false
        case "unload" where args.count == 3:
            let name = args[2].string
            guard let module = server.modules.modules.first(where: { $0.name == name }) else {
                reply.error("ERR Error unloading module: no such module with that name")
                return true
            }
            guard module.typeNames.isEmpty else {
                reply.error("ERR Error unloading module: the module exports one or more module-side data types, can't unload")
                return true
            }
            guard module.liveBlocks.load(ordering: .acquiring) == 0 else {
                reply.error("ERR Error unloading module: the module has blocked clients")
                return true
            }
            // Every shard lock: no module command of it is running anywhere.
            let section = shard.section!
            _ = section.enter(section.everyShard, .outlastBusy)
            server.modules.remove(module)
            section.exit(section.everyShard)
            if let handle = module.handle { dlclose(handle) }
            server.log.notice("Module \(name) unloaded")
            reply.ok()
            return false
        case "help" where args.count == 2:
            let lines = ["MODULE <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                         "LIST", "    Return a list of loaded modules.",
                         "LOAD <path> [<arg> ...]", "    Load a module library from <path>, passing to it any optional arguments.",
                         "LOADEX <path> [[CONFIG NAME VALUE] [CONFIG NAME VALUE]] [ARGS ...]",
                         "    Load a module library from <path>, while passing it module configurations and optional arguments.",
                         "UNLOAD <name>", "    Unload a module.",
                         "HELP", "    Print this help."]
            reply.arrayHeader(lines.count)
            for l in lines { reply.simple(l) }
            return false
        default:
            reply.error("ERR unknown subcommand or wrong number of arguments for '\(args[1].string)'. Try MODULE HELP.")
            return true
        }
    }

    private static func reportLoad(_ server: Server, path: String, arguments: [String], _ reply: ReplyWriter) -> Bool {
        do {
            _ = try ModuleCommands.load(server, path: path, arguments: arguments)
            reply.ok()
            return false
        } catch {
            server.log.warning("\(error.description)")
            reply.error("ERR Error loading the extension. Please check the server logs.")
            return true
        }
    }
}
