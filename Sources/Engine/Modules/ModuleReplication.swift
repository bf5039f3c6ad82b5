import RESP
import Synchronization

// Replicate and ReplicateVerbatim: what a module asks to send to replicas and the AOF.
//
// ReplicateVerbatim puts the module command itself, as the client sent it, into the
// effect stream (Keyspace/Effects.swift), inside the command's block. Replicate is checked
// as Redis checks it (a command Berth knows and a valid format, in host.c) and counted;
// its arguments do not reach the stream yet (host.c would have to hand them over).
enum ModuleReplication {
    /// Accepted Replicate and ReplicateVerbatim calls since start.
    static let calls = Atomic<Int>(0)

    /// Replicate(ctx, command, fmt, ...) with `argumentCount` arguments (host.c).
    static func replicate(_ ctx: ModuleContext, command: String, argumentCount: Int) -> Int32 {
        let name = Bytes(command)
        guard ctx.server.commands.lookup(name) != nil || ctx.server.modules.command(named: name) != nil else {
            return ModuleAPI.err
        }
        calls.add(1, ordering: .relaxed)
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
