import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// The core's half of RedisModule_Yield (the mechanism is told at the top of
// Modules/ModuleYield.swift): the gate through which allow-busy module commands that
// arrived on other shards enter a yielding module's section, and the flag that tells
// engine commands such a section holds every shard lock (Execution.swift waits it out).

/// Who may run inside a yielding module's section.
///
/// Invariants: `holder` is the thread of the section that announced busy, nil otherwise;
/// guests enter only while `open` (the holder is inside Yield), one at a time (`inside`);
/// the holder closes the gate only when no guest is inside or waiting, so it never runs
/// alongside a guest; a guest that finds no holder gives up and takes the locks itself.
package final class ModuleYieldGate: Sendable {
    private struct State {
        var holder: pthread_t?
        var open = false
        var inside = false
        var waiting = 0
    }

    private let state = Mutex(State())
    /// A module operation holds every shard lock (see the top of this file). Set and
    /// cleared by the thread holding them, so at most one operation owns it.
    package let sectionHeld = Atomic<Bool>(false)

    package var hasHolder: Bool { state.withLock { $0.holder != nil } }

    package var isHolderThread: Bool {
        state.withLock { s in s.holder.map { pthread_equal($0, pthread_self()) != 0 } ?? false }
    }

    package func setHolder() { state.withLock { $0.holder = pthread_self() } }
    package func clearHolder() { state.withLock { $0.holder = nil } }

    /// The holder, inside Yield: lets waiting guests run, one after the other, then
    /// closes. A guest arriving later waits for the next Yield.
    package func admitGuests() {
        state.withLock { $0.open = true }
        while true {
            let closed = state.withLock { s -> Bool in
                guard !s.inside && s.waiting == 0 else { return false }
                s.open = false
                return true
            }
            if closed { return }
            usleep(50)
        }
    }

    /// A guest: waits for the holder to yield; false when the section ended meanwhile.
    package func enter() -> Bool {
        state.withLock { $0.waiting += 1 }
        while true {
            let outcome = state.withLock { s -> Bool? in
                if s.open && !s.inside {
                    s.inside = true
                    s.waiting -= 1
                    return true
                }
                if s.holder == nil {
                    s.waiting -= 1
                    return false
                }
                return nil
            }
            if let outcome { return outcome }
            usleep(50)
        }
    }

    package func leave() { state.withLock { $0.inside = false } }
}
