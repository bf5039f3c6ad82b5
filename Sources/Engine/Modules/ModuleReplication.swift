import RESP
import Synchronization

// Replicate and ReplicateVerbatim: what a module asks to send to replicas and the AOF.
//
// Berth has neither replicas nor an AOF yet, so there is nowhere to send anything. Both
// calls succeed as they would on a Redis primary with no replicas, after the checks Redis
// makes (Replicate: a command Berth knows and a valid format, checked in host.c), and are
// counted (`calls`), so that a test can see a module asked. When replication arrives,
// this is where a module's commands join the replication stream.
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
        register("ReplicateVerbatim", { _ in
            ModuleReplication.calls.add(1, ordering: .relaxed)
            return ModuleAPI.ok
        } as @convention(c) (RawPointer) -> Int32)
    }
}
