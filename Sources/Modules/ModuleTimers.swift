import Engine
import Keyspace
import Synchronization

// Module timers: CreateTimer, StopTimer, GetTimerInfo.
//
// A timer belongs to one shard: the shard whose thread created it (in a command, reply or
// timer callback), or shard 0 when no shard thread created it (OnLoad, a module thread).
// That shard's loop fires it once it is due (`Shard.fireModuleTimers`, called at the top of
// every loop pass, and the loop wakes up in time for the earliest): the callback runs on
// that thread under every shard lock, as a module command does, with a context of the
// module that has no client (replies made on it go nowhere) and the creator's database.
// Keys it made ready are served and its keyspace events published afterwards, as after a
// command. A timer fires once; a module that wants a period creates the next one from the
// callback, as with Redis.
//
// A timer created from another thread wakes its shard, so that shard recomputes how long
// it may sleep. The table is scanned linearly: modules keep few timers at a time.

/// One pending timer (its data pointer is the module's, handed back as is).
struct ModuleTimer: @unchecked Sendable {
    typealias Callback = @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void
    let id: UInt64
    let module: Module
    let shard: Int
    let db: Int
    /// Wall-clock milliseconds (ShardStore.nowMilliseconds) when it is due.
    let due: Int64
    let callback: Callback
    let data: UnsafeMutableRawPointer?
}

/// Every pending timer of the server.
///
/// Invariants: all timers are in `state`, keyed by id; ids start at 1 and are never
/// reused; a timer leaves the table exactly once, either taken by its shard to fire or
/// removed by StopTimer, so its callback runs at most once and never after StopTimer
/// returned OK. `pending` is the table's size, readable without the lock.
final class ModuleTimers: @unchecked Sendable {
    private struct State: @unchecked Sendable {
        var timers: [UInt64: ModuleTimer] = [:]
        var nextID: UInt64 = 1
    }

    private let state = Mutex(State())
    let pending = Atomic<Int>(0)

    func add(module: Module, shard: Int, db: Int, due: Int64, callback: @escaping ModuleTimer.Callback,
             data: UnsafeMutableRawPointer?) -> UInt64 {
        state.withLock { s in
            let id = s.nextID
            s.nextID += 1
            s.timers[id] = ModuleTimer(id: id, module: module, shard: shard, db: db, due: due, callback: callback, data: data)
            pending.add(1, ordering: .relaxed)
            return id
        }
    }

    /// StopTimer: removes `module`'s timer `id`, if it has not fired.
    func stop(_ id: UInt64, of module: Module) -> ModuleTimer? {
        state.withLock { s in
            guard let t = s.timers[id], t.module === module else { return nil }
            s.timers[id] = nil
            pending.subtract(1, ordering: .relaxed)
            return t
        }
    }

    func timer(_ id: UInt64, of module: Module) -> ModuleTimer? {
        state.withLock { s in s.timers[id].flatMap { $0.module === module ? $0 : nil } }
    }

    /// Removes and returns `shard`'s timers due at `now`, earliest first.
    func takeDue(shard: Int, now: Int64) -> [ModuleTimer] {
        guard pending.load(ordering: .relaxed) > 0 else { return [] }
        return state.withLock { s in
            let due = s.timers.values.filter { $0.shard == shard && $0.due <= now }
            for t in due { s.timers[t.id] = nil }
            pending.subtract(due.count, ordering: .relaxed)
            return due.sorted { ($0.due, $0.id) < ($1.due, $1.id) }
        }
    }

    /// When `shard`'s earliest timer is due.
    func nextDue(shard: Int) -> Int64? {
        guard pending.load(ordering: .relaxed) > 0 else { return nil }
        return state.withLock { s in s.timers.values.filter { $0.shard == shard }.map(\.due).min() }
    }
}

extension Shard {
    /// Fires this shard's due module timers; true when any fired.
    func fireModuleTimers(now: Int64) -> Bool {
        let due = server.moduleTimers.takeDue(shard: index, now: now)
        for timer in due { runModuleTimer(timer) }
        return !due.isEmpty
    }

    private func runModuleTimer(_ timer: ModuleTimer) {
        _ = section.enter(section.everyShard, .outlastBusy)
        context.dbIndex = timer.db
        context.now = ShardStore.nowMilliseconds()
        let ctx = ModuleContext(kind: .timer, module: timer.module, server: server, shard: self, clientID: 0,
                                db: timer.db, protocolVersion: 2, holdsLocks: true)
        ModuleYield.sectionBegan(ctx)
        timer.callback(ctx.pointer, timer.data)
        ModuleYield.sectionEnded(ctx)
        section.leave(section.everyShard)
        ctx.close()
        section.finish()
    }
}

extension ModuleAPI {
    typealias TimerCallback = ModuleTimer.Callback

    static func registerTimers() {
        register("CreateTimer", { c, period, callback, data in
            let ctx = ModuleContext.from(c)
            guard let callback else { return 0 }
            let shard = ctx.shard?.index ?? 0
            let due = ShardStore.nowMilliseconds() + max(0, period)
            let id = ctx.server.moduleTimers.add(module: ctx.module, shard: shard, db: ctx.db, due: due,
                                                 callback: callback, data: data)
            // Another thread: wake the shard so that it sleeps no longer than this timer.
            if ctx.shard == nil { ctx.server.shards[shard].post(.run { _ in }) }
            return id
        } as @convention(c) (RawPointer, Int64, TimerCallback?, RawPointer) -> UInt64)
        register("StopTimer", { c, id, data in
            guard let timer = ModuleContext.from(c).server.moduleTimers.stop(id, of: ModuleContext.from(c).module) else {
                return ModuleAPI.err
            }
            data?.pointee = timer.data
            return ModuleAPI.ok
        } as @convention(c) (RawPointer, UInt64, UnsafeMutablePointer<RawPointer>?) -> Int32)
        register("GetTimerInfo", { c, id, remaining, data in
            let ctx = ModuleContext.from(c)
            guard let timer = ctx.server.moduleTimers.timer(id, of: ctx.module) else { return ModuleAPI.err }
            remaining?.pointee = UInt64(max(0, timer.due - ShardStore.nowMilliseconds()))
            data?.pointee = timer.data
            return ModuleAPI.ok
        } as @convention(c) (RawPointer, UInt64, UnsafeMutablePointer<UInt64>?, UnsafeMutablePointer<RawPointer>?) -> Int32)
    }
}
