import Commands
import Keyspace
import RESP
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// MONITOR: clients that see every command the server runs, one line each, in Redis's
/// format (`+<seconds>.<micros> [<db> <addr>] "arg" ...`, arguments quoted and escaped).
///
/// A monitor is a connection of some shard; commands run on every shard. After a command
/// runs, the shard that ran it formats the line once and posts it to each shard that has
/// monitors, whose thread appends it to its monitors' output. Lines of one client reach a
/// monitor in the order its commands ran; lines of clients on different shards may
/// interleave differently than their commands did, since each shard's inbox is its own
/// queue. With no monitor the cost is one relaxed atomic load per command.
///
/// As in Redis: a line is fed after its command ran (SELECT shows the new database), a
/// script's (EVAL, FCALL) before, so that the commands it runs follow it;
/// commands refused before running (unknown, wrong arity, no auth) and administrative
/// ones (CONFIG, DEBUG, SLOWLOG, MONITOR...) are not fed; AUTH's and HELLO's passwords
/// are shown as "(redacted)"; queued commands are fed when EXEC runs them, before the
/// EXEC itself; commands a Lua script runs are fed as from `lua`. Unlike Redis, commands that
/// JavaScript functions and modules run are not fed.
///
/// Invariants: `perShard[s]` is the number of monitors homed on shard s, changed only by
/// that shard's thread; `active` is their sum.
final class MonitorFeed: Sendable {
    let active = Atomic<Int>(0)
    private let perShard: Mutex<[Int]>

    init(shards: Int) { perShard = Mutex(Array(repeating: 0, count: shards)) }

    func add(shard: Int) {
        perShard.withLock { $0[shard] += 1 }
        active.add(1, ordering: .relaxed)
    }

    func remove(shard: Int) {
        perShard.withLock { $0[shard] -= 1 }
        active.subtract(1, ordering: .relaxed)
    }

    var shardsWithMonitors: [Int] { perShard.withLock { counts in counts.indices.filter { counts[$0] > 0 } } }

    /// The line a monitor receives for `args`, run in database `db` by the client at `peer`.
    static func line(db: Int, peer: String, name: String, _ args: [Bytes]) -> Bytes {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let micros = String(ts.tv_nsec / 1000)
        var out = Array("+\(ts.tv_sec).\(String(repeating: "0", count: 6 - micros.count))\(micros) [\(db) \(peer)]".utf8)
        for (i, a) in args.enumerated() {
            out.append(32)
            if isRedacted(name, args, i) { out += Array("\"(redacted)\"".utf8) } else { appendQuoted(a, to: &out) }
        }
        out += [13, 10]
        return Bytes(out)
    }

    /// AUTH's arguments, and the user and password after HELLO's AUTH.
    static func isRedacted(_ name: String, _ args: [Bytes], _ i: Int) -> Bool {
        if name == "auth" { return i > 0 }
        if name == "hello", i >= 3, args[i - 1].equalsIgnoringCase("auth") || (i >= 4 && args[i - 2].equalsIgnoringCase("auth")) {
            return true
        }
        return false
    }

    /// `"..."` with backslash escapes for quotes, backslashes and control characters, and
    /// \xHH for any other byte that is not printable ASCII.
    static func appendQuoted(_ a: Bytes, to out: inout [UInt8]) {
        out.append(34)
        a.withUnsafeBytes { raw in
            for c in raw {
                switch c {
                case 92, 34: out += [92, c]
                case 10: out += [92, UInt8(ascii: "n")]
                case 13: out += [92, UInt8(ascii: "r")]
                case 9: out += [92, UInt8(ascii: "t")]
                case 7: out += [92, UInt8(ascii: "a")]
                case 8: out += [92, UInt8(ascii: "b")]
                case 32...126: out.append(c)
                default:
                    let hex = Array("0123456789abcdef".utf8)
                    out += [92, UInt8(ascii: "x"), hex[Int(c >> 4)], hex[Int(c & 15)]]
                }
            }
        }
        out.append(34)
    }
}

extension Shard {
    /// Feeds a command that just ran to every monitor, if there is any.
    @inline(__always)
    func feedMonitors(_ spec: CommandSpec, _ conn: Connection, _ args: [Bytes]) {
        guard server.monitors.active.load(ordering: .relaxed) > 0 else { return }
        feedMonitors(spec, db: conn.db, peer: conn.peer, args)
    }

    /// The same for a command a script ran (`peer` "lua", as Redis shows it).
    func feedMonitors(_ spec: CommandSpec, db: Int, peer: String, _ args: [Bytes]) {
        guard server.monitors.active.load(ordering: .relaxed) > 0, !spec.flags.contains(.admin) else { return }
        let line = MonitorFeed.line(db: db, peer: peer, name: spec.name, args)
        for s in server.monitors.shardsWithMonitors {
            server.shards[s].post(.run { $0.deliverToMonitors(line) })
        }
    }

    /// Appends a line to this shard's monitors; one that does not read its feed is closed
    /// by the replica class of client-output-buffer-limit, as Redis closes it.
    func deliverToMonitors(_ line: Bytes) {
        let config = server.config
        for conn in monitors.values where !conn.closing && !conn.closeAfterFlush && !conn.overOutputLimit {
            conn.output.append(line)
            flushWithinLimits(conn, hard: config.replicaHardLimit.load(ordering: .relaxed),
                              soft: config.replicaSoftLimit.load(ordering: .relaxed),
                              softSeconds: config.replicaSoftSeconds.load(ordering: .relaxed))
        }
    }

    /// MONITOR: from now on this connection receives the feed.
    static func monitorCommand(_ shard: Shard, _ conn: Connection, _ args: [Bytes], _ reply: ReplyWriter) -> Bool {
        if !conn.isMonitor {
            conn.isMonitor = true
            shard.monitors[conn.id] = conn
            shard.server.monitors.add(shard: shard.index)
        }
        reply.ok()
        return false
    }

    /// Ends a connection's monitoring (it closed, or sent RESET).
    func stopMonitoring(_ conn: Connection) {
        guard conn.isMonitor else { return }
        conn.isMonitor = false
        monitors.removeValue(forKey: conn.id)
        server.monitors.remove(shard: index)
    }
}
