import Commands
import RESP
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

// Whether a script (Scripting), a JavaScript function (JavaScript) or a module's yielding
// section (Modules) is running past busy-reply-threshold. It lives in the core because
// the core acts on it: LockSection's waits give up on it (LockWaitPolicy), and commands
// are refused with -BUSY by it (Execution.swift). How a script's section takes its locks
// is told at the top of Scripting/ScriptSection.swift.

/// The running script's state that other threads read: whether it is past
/// busy-reply-threshold (other clients get -BUSY; SCRIPT KILL / FUNCTION KILL may stop it
/// unless it wrote), whether it is widening its section, and the lock that makes scripts
/// run one at a time.
///
/// Invariants: `lock` is held by the thread running a script (or an EXEC that contains
/// one) for the whole run, so at most one script is announced or escalating at a time;
/// `running` is 0 (none), 1 (an EVAL script), 2 (a function) or 3 (a module section that
/// yielded past the threshold, ModuleYield.swift: it holds every shard lock, so it never
/// overlaps a script's announcement); `moduleReply` is set before `running` becomes 3; `kill` is only set while
/// `running` is; `escalating` is only true while its script waits for shard locks out of
/// order. The script's own thread clears them all before it releases `lock`.
package final class ScriptBusy: Sendable {
    package let running = Atomic<Int>(0)
    package let wrote = Atomic<Bool>(false)
    package let kill = Atomic<Bool>(false)
    let escalating = Atomic<Bool>(false)
    let lock = ShardLock()
    /// Runs started again over every shard, and escalations (INFO stats).
    package let restarts = Atomic<Int>(0)
    let escalations = Atomic<Int>(0)
    /// The announced function's FCALL and start (monotonic ms), for FUNCTION STATS.
    private let function = Mutex<(command: [Bytes], startedAt: Int)?>(nil)

    package var runningFunction: (command: [Bytes], startedAt: Int)? { function.withLock { $0 } }
    /// The busy reply a yielding module gave (running == 3).
    private let moduleReply = Mutex<String>("")

    package func announceModule(_ reply: String) {
        moduleReply.withLock { $0 = reply }
        running.store(3, ordering: .releasing)
    }

    package func setModuleReply(_ reply: String) { moduleReply.withLock { $0 = reply } }

    package func announceFunction(_ command: [Bytes], startedAt: Int) {
        function.withLock { $0 = (command, startedAt) }
    }

    /// Commands Redis flags allow-busy: they run while a script holds the server.
    private static let allowedWhileBusy: Set<String> = ["auth", "hello", "multi", "discard", "watch", "unwatch",
                                                         "quit", "reset"]

    package func clear() {
        function.withLock { $0 = nil }
        kill.store(false, ordering: .relaxed)
        wrote.store(false, ordering: .relaxed)
        running.store(0, ordering: .releasing)
    }

    /// Sleeps while a script escalates, so that a lock set starting over does not take
    /// back the locks that script waits for.
    func waitWhileEscalating() {
        while escalating.load(ordering: .acquiring) { usleep(100) }
    }

    /// The -BUSY reply for a command that may not run now, or nil when it may.
    func refusal(_ spec: CommandSpec, _ args: [Bytes]) -> String? {
        let state = running.load(ordering: .acquiring)
        guard state != 0 else { return nil }
        if state == 3 {
            if Self.allowedWhileBusy.contains(spec.name) || spec.flags.contains(.allowBusy) { return nil }
            return "BUSY " + moduleReply.withLock { $0 }
        }
        let kill = state == 2 ? "function" : "script"
        if spec.name == kill && args.count == 2 && args[1].equalsIgnoringCase("kill") { return nil }
        if Self.allowedWhileBusy.contains(spec.name) { return nil }
        // FUNCTION STATS reports a running function; during an EVAL script it is refused.
        if state == 2 && spec.name == "function" && args.count == 2 && args[1].equalsIgnoringCase("stats") { return nil }
        if spec.name == "shutdown" && args.dropFirst().contains(where: { $0.equalsIgnoringCase("nosave") }) { return nil }
        return "BUSY Redis is busy running a script. You can only call \(state == 2 ? "FUNCTION" : "SCRIPT") KILL or SHUTDOWN NOSAVE."
    }
}

extension Shard {
    /// Called from a script past busy-reply-threshold, on the thread running it: the
    /// shard's other clients get their -BUSY replies (and may send SCRIPT KILL) while it
    /// runs, as Redis's event loop serves them from inside a script.
    package func serveOthersWhileBusy() {
        guard let thread, pthread_equal(thread, pthread_self()) != 0, let active = activeConnection else { return }
        backend.pollNested(skipping: active)
    }
}
