import Engine
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// RedisModule_Yield: a long module operation lets the server breathe.
//
// In Redis a module command, or a thread holding the GIL, that runs long calls Yield so
// that the event loop runs meanwhile: once busy-reply-threshold has passed since the
// operation began, other clients' commands are answered `-BUSY <reply>` (with
// YIELD_FLAG_CLIENTS), except commands flagged `allow-busy`, which run right there, in the
// middle of the module's operation.
//
// In Berth such an operation holds every shard lock (a module command, a timer callback,
// a thread between ThreadSafeContextLock and Unlock). Yield does three things:
// - Past the threshold, with YIELD_FLAG_CLIENTS, it announces the server busy
//   (`ScriptBusy.running` = 3, with the module's reply). Shard threads waiting for a lock
//   give up and answer -BUSY, and commands that need no lock are refused the same way,
//   exactly as behind a busy script. With YIELD_FLAG_NONE nothing is announced: other
//   clients' commands wait for the locks, as Redis's do.
// - On a shard thread, it serves that shard's other clients without waiting
//   (`serveOthersWhileBusy`, as a busy script does); an allow-busy module command among
//   them runs at once on this thread, inside the section this thread holds.
// - It opens the gate (`ModuleYieldGate`) for allow-busy module commands that arrived on
//   other threads: each runs on its own thread, one at a time, while the yielding thread
//   waits inside Yield. The yielder is parked at a point the module chose, so the guest
//   sees the keyspace as Redis's nested command would, and the locks' owner is not
//   running meanwhile.
// When the operation ends (`sectionEnded`), the announcement is withdrawn and guests
// still waiting go the usual way (they take the locks).
//
// Commands that take no shard lock (PING, ECHO, CLIENT, CONFIG, INFO...: the engine
// commands) would run beside such an operation on other shards, where Redis runs
// nothing. So an operation also raises `ModuleYieldGate.sectionHeld` from the moment it
// holds every lock (`sectionBegan`) to its end; an engine command that sees it raised
// waits for its own shard's lock, as a data command would (Shard.waitOutModuleSection),
// and gets -BUSY if the operation announces busy meanwhile. Only engine commands read
// the flag, and only when it is raised do they touch a lock.

enum ModuleYield {
    static let flagClients: Int32 = 1 << 1

    static func yield(_ ctx: ModuleContext, flags: Int32, reply: String?) {
        guard ctx.holdsLocks else { return }  // not inside an atomic section: nothing to yield
        let server = ctx.server
        let gate = server.moduleYieldGate
        let message = reply ?? "Berth is busy running a module command"
        if !ctx.announcedBusy {
            let threshold = server.config.busyReplyThreshold.load(ordering: .relaxed)
            guard flags & flagClients != 0, monotonicMicroseconds() - ctx.sectionStart >= threshold * 1000 else { return }
            guard !gate.hasHolder else { return }  // an outer operation of this thread announced already
            ctx.announcedBusy = true
            gate.setHolder()
            server.scriptBusy.announceModule(message)
        } else {
            server.scriptBusy.setModuleReply(message)
        }
        ctx.shard?.serveOthersWhileBusy()
        gate.admitGuests()
    }

    /// The operation of `ctx` now holds every shard lock (command, timer, thread lock).
    static func sectionBegan(_ ctx: ModuleContext) {
        ctx.sectionStart = monotonicMicroseconds()
        ctx.marksSection = true
        ctx.server.moduleYieldGate.sectionHeld.store(true, ordering: .releasing)
    }

    /// The operation of `ctx` is over (command returned, timer ran, thread unlocked).
    static func sectionEnded(_ ctx: ModuleContext) {
        if ctx.marksSection {
            ctx.marksSection = false
            ctx.server.moduleYieldGate.sectionHeld.store(false, ordering: .releasing)
        }
        guard ctx.announcedBusy else { return }
        ctx.announcedBusy = false
        ctx.server.scriptBusy.running.store(0, ordering: .releasing)
        ctx.server.moduleYieldGate.clearHolder()
    }
}

extension ModuleAPI {
    static func registerYield() {
        register("Yield", { c, flags, reply in
            ModuleYield.yield(ModuleContext.from(c), flags: flags, reply: reply.map { String(cString: $0) })
        } as @convention(c) (RawPointer, Int32, UnsafePointer<CChar>?) -> Void)
    }
}
