import Engine
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
// A script runs on its client's shard thread as an atomic section over the shards of its
// declared keys, widened when it touches others (ScriptSection.swift): no client sees it
// half done. redis.call runs the command in-process under those locks, as inside MULTI
// (a blocking command answers at once). Keys its writes made ready, and its keyspace events, are handled after the
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
