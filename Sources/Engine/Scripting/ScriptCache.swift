import CLua
import Commands
import RESP
import Synchronization

// EVAL scripts: how they run on a sharded server.
//
// Every script body the server has seen (EVAL or SCRIPT LOAD) is kept once, server-wide,
// by its SHA1 (`ScriptCache`). Each shard thread has its own Lua interpreter
// (`ScriptHost`, over the CLua target) and compiles a script the first time that shard
// runs it; SCRIPT FLUSH bumps a generation that makes every interpreter drop its compiled
// scripts before its next run.
//
// A script runs on its client's shard thread as an atomic section over every shard: it
// may touch any key (declared or not), and no client sees it half done. redis.call runs
// the command in-process under those locks, as inside MULTI (a blocking command answers
// at once). Keys its writes made ready, and its keyspace events, are handled after the
// script ends, as for any command. EVAL_RO / EVALSHA_RO and `#!lua flags=no-writes`
// scripts get Redis's error for a write.

/// Script bodies by SHA1 hex, shared by all shards.
///
/// Invariants: a body is stored under the SHA1 of exactly its bytes; `generation` grows
/// on every flush, and an interpreter that compiled scripts under an older generation
/// drops them before running anything.
final class ScriptCache: Sendable {
    private let bodies = Mutex<[String: Bytes]>([:])
    let generation = Atomic<Int>(0)

    static func sha1(_ body: Bytes) -> String {
        var hex = [CChar](repeating: 0, count: 41)
        body.withUnsafeBytes { raw in
            raw.withMemoryRebound(to: CChar.self) { berth_sha1_hex($0.baseAddress, raw.count, &hex) }
        }
        return String(decoding: hex.prefix(40).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Stores `body` and returns its SHA1.
    @discardableResult
    func add(_ body: Bytes) -> String {
        let sha = ScriptCache.sha1(body)
        bodies.withLock { $0[sha] = body }
        return sha
    }

    func body(_ sha: String) -> Bytes? { bodies.withLock { $0[sha.lowercased()] } }

    func flush() {
        bodies.withLock { $0.removeAll() }
        generation.add(1, ordering: .releasing)
    }

    var count: Int { bodies.withLock { $0.count } }
}

/// The script past busy-reply-threshold, if any: while one is, other clients get -BUSY,
/// and SCRIPT KILL / FUNCTION KILL may stop it unless it wrote.
///
/// Invariants: at most one script is announced at a time (every script holds every shard
/// lock); `running` is 0 (none), 1 (an EVAL script) or 2 (a function); `kill` is only set
/// while `running` is, and both are cleared by the script's own thread when it ends.
final class ScriptBusy: Sendable {
    let running = Atomic<Int>(0)
    let wrote = Atomic<Bool>(false)
    let kill = Atomic<Bool>(false)

    func clear() {
        kill.store(false, ordering: .relaxed)
        wrote.store(false, ordering: .relaxed)
        running.store(0, ordering: .releasing)
    }

    /// The -BUSY reply for a command that may not run now, or nil when it may.
    func refusal(_ spec: CommandSpec, _ args: [Bytes]) -> String? {
        let state = running.load(ordering: .acquiring)
        guard state != 0 else { return nil }
        let kill = state == 2 ? "function" : "script"
        if spec.name == kill && args.count == 2 && args[1].equalsIgnoringCase("kill") { return nil }
        if spec.name == "shutdown" && args.dropFirst().contains(where: { $0.equalsIgnoringCase("nosave") }) { return nil }
        return "BUSY Redis is busy running a script. You can only call \(state == 2 ? "FUNCTION" : "SCRIPT") KILL or SHUTDOWN NOSAVE."
    }
}
