import Engine
import RESP
import Synchronization

// Replicate and ReplicateVerbatim: what a module asks to send to replicas and the AOF.
//
// Both put a command into the effect stream (Keyspace/Effects.swift), inside the module
// command's block, as Redis propagates them to replicas and the AOF: ReplicateVerbatim the
// module command itself, as the client sent it; Replicate the command and arguments it
// names, after the checks Redis makes (a command Berth knows, and a valid format, checked
// in host.c). Both are counted (`calls`).
enum ModuleReplication {
    /// Accepted Replicate and ReplicateVerbatim calls since start.
    static let calls = Atomic<Int>(0)

    /// Replicate(ctx, command, fmt, ...): `args` is the command and the arguments its
    /// format named (host.c).
    static func replicate(_ ctx: ModuleContext, _ args: [Bytes]) -> Int32 {
        guard ctx.server.commands.lookup(args[0]) != nil || ctx.server.modules.command(named: args[0]) != nil else {
            return ModuleAPI.err
        }
        calls.add(1, ordering: .relaxed)
        ctx.commandContext.propagate(args, db: ctx.db)
        return ModuleAPI.ok
    }
}

extension ModuleAPI {
    static func registerReplication() {
        register("ReplicateVerbatim", { p in
            ModuleReplication.calls.add(1, ordering: .relaxed)
            let ctx = ModuleContext.from(p)
            if !ctx.arguments.isEmpty { ctx.commandContext.propagate(ctx.arguments, db: ctx.db) }
            return ModuleAPI.ok
        } as @convention(c) (RawPointer) -> Int32)
    }
}
