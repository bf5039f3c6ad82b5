import Engine
import Commands
import Keyspace
import RESP

/// Thread-safe contexts: what a module's own threads use to reply to a blocked client
/// and to touch the keyspace.
///
/// ThreadSafeContextLock is Redis's global lock made of Berth's parts: every shard lock,
/// taken in ascending order like any atomic section, so the module thread sees the
/// keyspace as if alone and no shard can deadlock against it. Replies made on a context
/// of a blocked client collect in the block and reach the client after its reply
/// callback's own reply; on a detached context they go nowhere.
extension ModuleAPI {
    /// The module of contexts made without one (GetThreadSafeContext(NULL)).
    static let anonymousModule = Module(path: "", handle: nil, arguments: [])

    static func threadSafeContext(_ server: Server, module: Module, block: ModuleBlock?) -> RawPointer {
        let ctx = ModuleContext(kind: .threadSafe, module: module, server: server, shard: nil,
                                clientID: block?.connectionID ?? 0, db: block?.db ?? 0,
                                protocolVersion: block?.protocolVersion ?? 2, holdsLocks: false)
        ctx.block = block
        ctx.denyBlocking = true
        _ = Unmanaged.passRetained(ctx)
        return ctx.pointer
    }

    static func registerThreads() {
        register("GetThreadSafeContext", { bc in
            guard let server = ModuleAPI.server else { return nil }
            let block = bc.map(ModuleBlock.from)
            return ModuleAPI.threadSafeContext(server, module: block?.module ?? ModuleAPI.anonymousModule, block: block)
        } as @convention(c) (RawPointer) -> RawPointer)
        register("GetDetachedThreadSafeContext", { c in
            let ctx = ModuleContext.from(c)
            return ModuleAPI.threadSafeContext(ctx.server, module: ctx.module, block: nil)
        } as @convention(c) (RawPointer) -> RawPointer)
        register("FreeThreadSafeContext", { c in
            let ctx = ModuleContext.from(c)
            if ctx.holdsLocks { ModuleAPI.unlockAll(ctx) }
            ModuleAPI.flushThreadReplies(ctx)
            ctx.close()
            Unmanaged.passUnretained(ctx).release()
        } as @convention(c) (RawPointer) -> Void)
        register("ThreadSafeContextLock", { c in
            let ctx = ModuleContext.from(c)
            guard !ctx.holdsLocks else { return }
            ModuleAPI.lockAll(ctx)
            ModuleYield.sectionBegan(ctx)
        } as @convention(c) (RawPointer) -> Void)
        register("ThreadSafeContextTryLock", { c in
            let ctx = ModuleContext.from(c)
            // Redis's GIL is not recursive: while it is held (by this context's owner or
            // any thread) TryLock fails.
            guard !ctx.holdsLocks else { return ModuleAPI.err }
            let section = ctx.server.offShardSection!
            guard section.tryEnter(section.everyShard) else { return ModuleAPI.err }
            ctx.holdsLocks = true
            ModuleYield.sectionBegan(ctx)
            return ModuleAPI.ok
        } as @convention(c) (RawPointer) -> Int32)
        register("ThreadSafeContextUnlock", { c in
            let ctx = ModuleContext.from(c)
            if ctx.holdsLocks { ModuleAPI.unlockAll(ctx) }
            ModuleAPI.flushThreadReplies(ctx)
        } as @convention(c) (RawPointer) -> Void)
    }

    /// Moves the replies made so far to the blocked client they are for.
    static func flushThreadReplies(_ ctx: ModuleContext) {
        guard ctx.kind == .threadSafe else { return }
        let complete = ctx.reply.takeComplete()
        ctx.block?.addThreadReplies(complete)
    }

    /// Enters the atomic section of a module thread: every shard lock, however long a
    /// busy script holds one.
    static func lockAll(_ ctx: ModuleContext) {
        let section = ctx.server.offShardSection!
        _ = section.enter(section.everyShard, .outlastBusy)
        ctx.holdsLocks = true
    }

    /// Leaves the atomic section of a module thread: ready keys and keyspace events go to
    /// the shards that serve them (LockSection.leave).
    static func unlockAll(_ ctx: ModuleContext) {
        ModuleYield.sectionEnded(ctx)
        let section = ctx.server.offShardSection!
        section.leave(section.everyShard, context: ctx.shard == nil ? ctx.commandContext : nil)
        ctx.holdsLocks = false
    }
}
