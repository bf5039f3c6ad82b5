import Engine
import Commands
import RESP
import Synchronization

// The module API for modules written in Swift and compiled into berth-server.
//
// The same engine objects serve C and Swift modules: a Swift module's commands are
// `.module` commands run in the same atomic section over every shard, its blocked
// clients are `ModuleBlock`s ending once on the same state machine, and its thread-side
// work takes the same every-shard lock. Only the surface differs: closures instead of
// function pointers, `Any?` privdata that ARC owns (an `onFree` closure still runs
// exactly once, for modules that count or release resources), Swift values for
// replies, and `RESPValue` for what `call` returns.
//
// Registering: `SwiftModules.register(MyModule.self)` before the server starts (the
// berth-server executable registers the modules it is built with); then
// `loadmodule swift:<name>` or `MODULE LOAD swift:<name> [args]` loads one.

/// A module written in Swift.
public protocol SwiftModule {
    static var name: String { get }
    static var version: Int { get }
    /// Registers the module's commands; throwing fails the load.
    static func onLoad(_ loader: SwiftModuleLoader, arguments: [String]) throws
}

/// The Swift modules this executable was built with, by name.
public enum SwiftModules {
    /// Metatypes are not Sendable; every access to `modules` holds `lock`.
    private final class Table: @unchecked Sendable {
        let lock = Mutex(())
        var modules: [String: any SwiftModule.Type] = [:]
    }
    private static let table = Table()

    public static func register(_ module: any SwiftModule.Type) {
        table.lock.withLock { _ in table.modules[module.name] = module }
    }

    static func named(_ name: String) -> (any SwiftModule.Type)? { table.lock.withLock { _ in table.modules[name] } }
}

/// A reply a Swift module sends.
public indirect enum ModuleReply: Sendable {
    case integer(Int), double(Double), bool(Bool), simple(String), error(String), bulk(Bytes), null
    case array([ModuleReply]), set([ModuleReply]), map([(ModuleReply, ModuleReply)])

    var engineReply: ModuleReplyBuilder.Reply {
        switch self {
        case .integer(let v): return .integer(v)
        case .double(let d): return .double(d)
        case .bool(let b): return .bool(b)
        case .simple(let s): return .simple(s)
        case .error(let e): return .error(e)
        case .bulk(let b): return .bulk(b)
        case .null: return .null
        case .array(let items): return .aggregate(.array, items.map(\.engineReply))
        case .set(let items): return .aggregate(.set, items.map(\.engineReply))
        case .map(let pairs): return .aggregate(.map, pairs.flatMap { [$0.0.engineReply, $0.1.engineReply] })
        }
    }
}

public struct SwiftModuleError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// What a Swift module's OnLoad gets: a way to add commands.
public struct SwiftModuleLoader {
    let ctx: ModuleContext

    /// Adds a command. `flags` are CreateCommand's (`"write"`, `"readonly fast"`, ...).
    public func addCommand(_ name: String, flags: String = "", firstKey: Int = 0, lastKey: Int = 0, keyStep: Int = 0,
                           _ body: @escaping (SwiftModuleContext) -> Void) throws {
        let callback = ModuleCallback.swift { ctx in
            body(SwiftModuleContext(ctx))
            return ModuleAPI.ok
        }
        guard ModuleCommands.create(ctx, name: name, function: callback, flags: flags,
                                    keys: (firstKey, lastKey, keyStep)) == ModuleAPI.ok else {
            throw SwiftModuleError("cannot add command '\(name)' (name taken or unknown flag)")
        }
    }
}

/// One callback's view of the server: its arguments, its reply, Call, blocking.
public struct SwiftModuleContext {
    let ctx: ModuleContext

    init(_ ctx: ModuleContext) { self.ctx = ctx }

    /// The command's arguments, its name first (empty in reply and timeout callbacks).
    public var arguments: [Bytes] { ctx.arguments }
    public var clientID: Int { ctx.clientID }
    public var database: Int { ctx.db }

    public func reply(_ r: ModuleReply) { ctx.reply.add(r.engineReply) }

    public func replyWrongArity() { ctx.reply.add(.error(CommandError.wrongArity(ctx.commandName).message)) }

    /// Runs a command (name first) in this callback's atomic section, as RedisModule_Call
    /// with the `E` flag: refusals come back as `.error`.
    public func call(_ args: [Bytes]) -> RESPValue {
        switch ModuleCall.run(ctx, args, flags: ctx.protocolVersion == 3 ? ["3"] : []) {
        case .success(let v): return v
        case .failure(let refusal): return .error(refusal.message)
        }
    }

    /// Blocks the client until `unblock`, the timeout (0 for none) or a disconnect. The
    /// reply closure gets the value given to `unblock`; `onFree` runs exactly once with
    /// the final value, whatever the outcome, once the handle was given back.
    public func block(timeoutMilliseconds: Int = 0,
                      onReply: @escaping (SwiftModuleContext, Any?) -> Void,
                      onTimeout: ((SwiftModuleContext, Any?) -> Void)? = nil,
                      onFree: ((Any?) -> Void)? = nil) -> ModuleBlockedClient? {
        let reply = ModuleCallback.swift { c in
            onReply(SwiftModuleContext(c), c.block?.value)
            return ModuleAPI.ok
        }
        let timeout = onTimeout.map { f in
            ModuleCallback.swift { c in
                f(SwiftModuleContext(c), c.block?.value)
                return ModuleAPI.ok
            }
        }
        guard let block = ctx.fileBlock(reply: reply, timeout: timeout, free: onFree.map { .swift($0) },
                                        timeoutMilliseconds: timeoutMilliseconds, keys: [], unblockOnDeleted: false) else {
            return nil
        }
        return ModuleBlockedClient(block, server: ctx.server)
    }

    /// Blocks until one of `keys` is written and `onReady` returns true for it (it runs
    /// under every shard lock and may pop with `call`), or the timeout passes.
    public func blockOnKeys(_ keys: [Bytes], timeoutMilliseconds: Int = 0,
                            onReady: @escaping (SwiftModuleContext, Bytes) -> Bool,
                            onTimeout: ((SwiftModuleContext) -> Void)? = nil) {
        let reply = ModuleCallback.swift { c in
            guard let key = c.readyKey else { return ModuleAPI.err }
            return onReady(SwiftModuleContext(c), key) ? ModuleAPI.ok : ModuleAPI.err
        }
        let timeout = onTimeout.map { f in
            ModuleCallback.swift { c in
                f(SwiftModuleContext(c))
                return ModuleAPI.ok
            }
        }
        var seen = Set<Bytes>()
        _ = ctx.fileBlock(reply: reply, timeout: timeout, free: nil, timeoutMilliseconds: timeoutMilliseconds,
                          keys: keys.filter { seen.insert($0).inserted }, unblockOnDeleted: false)
    }
}

/// A Swift module's handle on a blocked client, usable from any thread.
///
/// Invariants: `unblock` or `abort` is called at most once (later calls do nothing); the
/// handle's reference on the block is given back by that call, as UnblockClient does.
public final class ModuleBlockedClient: Sendable {
    private let block: ModuleBlock
    private unowned(unsafe) let server: Server
    private let done = Atomic<Bool>(false)

    init(_ block: ModuleBlock, server: Server) {
        self.block = block
        self.server = server
    }

    /// Ends the wait: the reply closure runs on the client's shard with `value`.
    public func unblock(_ value: Any? = nil) {
        guard !done.exchange(true, ordering: .acquiringAndReleasing) else { return }
        block.value = value
        let b = block
        server.shards[block.home].post(.run { $0.moduleUnblocked(b, abort: false) })
    }

    /// Ends the wait without a reply callback (the command already replied an error).
    public func abort() {
        guard !done.exchange(true, ordering: .acquiringAndReleasing) else { return }
        block.aborted = true
        let b = block
        server.shards[block.home].post(.run { $0.moduleUnblocked(b, abort: true) })
    }

    /// Adds a reply that reaches the client after the reply closure's own.
    public func reply(_ r: ModuleReply) { block.addThreadReplies([r.engineReply]) }

    /// Runs `body` with every shard locked, as ThreadSafeContextLock does; `call` works there.
    public func withLock<T>(_ body: (SwiftModuleContext) -> T) -> T {
        let ctx = ModuleContext(kind: .threadSafe, module: block.module, server: server, shard: nil,
                                clientID: block.connectionID, db: block.db, protocolVersion: block.protocolVersion,
                                holdsLocks: false)
        ctx.block = block
        ctx.denyBlocking = true
        ModuleAPI.lockAll(ctx)
        let result = body(SwiftModuleContext(ctx))
        ModuleAPI.unlockAll(ctx)
        ModuleAPI.flushThreadReplies(ctx)
        ctx.close()
        return result
    }
}
