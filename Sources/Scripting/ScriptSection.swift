import Engine
import Commands
import Keyspace
import RESP
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

// A script's atomic section: which shard locks a script or function holds while it runs.
//
// Scripts run one at a time, as in Redis: each takes the server-wide script lock first
// (`ScriptBusy.lock`), then the locks of the shards its declared keys live on, in
// ascending order like any multi-shard command. Clients of every other shard keep being
// served while it runs. A script flagged `no-cluster` (it may touch any key), and one run
// inside EXEC (which already holds every shard), covers every shard from the start.
//
// When redis.call reaches a key on a shard the script does not hold, the section widens
// (`ScriptRun.cover`):
//   1. It tries those locks without waiting; if it gets them, the script goes on.
//   2. Otherwise, if the script has not written yet, nothing it did is visible: the run is
//      abandoned (the Lua side raises an error no pcall can catch) and started again
//      holding every shard lock.
//   3. Otherwise it must wait while holding locks, out of ascending order. It announces an
//      escalation (`ScriptBusy.escalating`) and waits. Every other thread that waits for a
//      shard lock while holding another (LockSection.swift) notices within one 5 ms slice,
//      drops what it holds and starts again after the escalation, so the script gets its
//      locks. Only one script escalates at a time, since scripts hold the script lock.
// Single-lock waiters hold nothing and need not step aside.
//
// After the script, keys its writes made ready are collected from every shard it held,
// the locks are released, and blocked clients are served, as after any command.

/// What a run of the Lua host ended with (berth_lua_run / berth_lua_fcall).
enum ScriptOutcome: Int32 {
    case replied = 0
    case failed = -1
    /// The script needed a shard it could not take before writing: run it again over all.
    case restart = -2
}

extension Shard {
    /// Runs `body` (one run of the Lua host) as an atomic section over the shards of
    /// `keys`, or every shard when `wholeKeyspace`; inside EXEC (`locksHeld`) every lock is
    /// already held. Nil when a busy script kept it from starting.
    func inScriptSection(_ run: ScriptRun, keys: ArraySlice<Bytes>, wholeKeyspace: Bool, locksHeld: Bool,
                         _ body: () -> ScriptOutcome) -> ScriptOutcome? {
        if !context.inTransaction { context.now = ShardStore.nowMilliseconds() }
        if locksHeld {
            run.held = section.everyShard
            context.beginEffectBatch()
            let outcome = body()
            context.endEffectBatch()
            run.finish()
            return outcome
        }
        guard section.enterScript(.refuseWhenBusy) else { return nil }
        var set = ShardLockSet()
        if wholeKeyspace {
            set = section.everyShard
        } else {
            for key in keys { set.insert(server.slots.shard(of: key)) }
        }
        guard section.enter(set, .refuseWhenBusy) else {
            section.exitScript()
            return nil
        }
        run.held = set
        // The script's writes reach the effect stream as one block, before its locks go.
        context.beginEffectBatch()
        var outcome = body()
        if outcome == .restart {
            server.scriptBusy.restarts.add(1, ordering: .relaxed)
            run.forgetHeldLog()
            section.exit(run.held)  // it wrote nothing
            run.held = ShardLockSet()
            if section.enter(section.everyShard, .refuseWhenBusy) {
                run.held = section.everyShard
                outcome = body()
            } else {
                outcome = .restart
            }
        }
        context.endEffectBatch()
        section.leave(run.held)
        run.held = ShardLockSet()
        run.finish()
        section.exitScript()
        if !blocking.readyQueue.isEmpty { blocking.serveReadyKeys() }
        // Messages the script published wait for its reply (the caller delivers them).
        if !context.events.isEmpty || !pendingKeyEvents.isEmpty { publishKeyspaceEvents(includingMessages: false) }
        return outcome == .restart ? nil : outcome
    }
}

extension ScriptRun {
    /// Makes the script hold every shard `spec` with `args` touches (see the top of this
    /// file). False when the run must start again over every shard.
    func cover(_ spec: CommandSpec, _ args: [Bytes]) -> Bool {
        let server = shard.server
        let shardCount = server.shards.count
        if held.count == shardCount { return true }
        var missing: [Int] = []
        if spec.flags.locksEveryShard {
            missing = (0..<shardCount).filter { !held.contains($0) }
        } else {
            for p in spec.keys.positions(args) {
                let s = server.slots.shard(of: args[p])
                if !held.contains(s) && !missing.contains(s) { missing.append(s) }
            }
        }
        if missing.isEmpty { return true }
        return shard.section.widen(&held, by: missing, mayRestart: !wrote)
    }
}
