import Commands
import Keyspace
import RESP
import Synchronization

/// The slow log (SLOWLOG GET/LEN/RESET): the last `slowlog-max-len` commands that took at
/// least `slowlog-log-slower-than` microseconds to execute, newest first, server-wide.
///
/// Every shard thread times its commands anyway (INFO commandstats); only a command past
/// the threshold takes the log's mutex, so the fast path costs one relaxed atomic load.
/// What is recorded follows Redis: an ID that increases across RESET, the Unix time the
/// command finished, its duration, its arguments (at most 32, each cut to 128 bytes, with
/// a note of what was left out), the client's address and name. AUTH and HELLO are not
/// logged (their arguments may hold a password); EXEC is logged as a whole, since the
/// commands of a transaction run inside it.
///
/// Invariant: `entries` holds at most `slowlog-max-len` entries, in ascending ID order.
package final class SlowLog: Sendable {
    struct Entry {
        let id: Int
        let time: Int
        let microseconds: Int
        let args: [Bytes]
        let peer: String
        let name: String
    }

    static let maxArguments = 32
    static let maxArgumentBytes = 128

    private struct State {
        var entries: [Entry] = []
        var nextID = 0
    }

    private let state = Mutex(State())

    /// Whether a command that ran this long is logged, as the configuration stands.
    @inline(__always)
    package static func isSlow(_ microseconds: Int, _ config: ServerConfig) -> Bool {
        let threshold = config.slowlogSlowerThan.load(ordering: .relaxed)
        return threshold >= 0 && microseconds >= threshold
    }

    package func record(_ args: [Bytes], microseconds: Int, peer: String, name: String, maxLength: Int) {
        guard maxLength > 0 else { return }
        let kept = SlowLog.trimmed(args)
        let time = Int(ShardStore.nowMilliseconds() / 1000)
        state.withLock { s in
            s.entries.append(Entry(id: s.nextID, time: time, microseconds: microseconds, args: kept, peer: peer, name: name))
            s.nextID += 1
            if s.entries.count > maxLength { s.entries.removeFirst(s.entries.count - maxLength) }
        }
    }

    /// Arguments as the log keeps them: the first 31 and a count of the rest when there are
    /// more than 32, each longer than 128 bytes cut with a count of the bytes left out.
    static func trimmed(_ args: [Bytes]) -> [Bytes] {
        var kept = args.count > maxArguments ? Array(args.prefix(maxArguments - 1)) : args
        for (i, a) in kept.enumerated() where a.count > maxArgumentBytes {
            kept[i] = a.slice(0..<maxArgumentBytes) + Bytes("... (\(a.count - maxArgumentBytes) more bytes)")
        }
        if args.count > maxArguments { kept.append(Bytes("... (\(args.count - maxArguments + 1) more arguments)")) }
        return kept
    }

    /// The newest `count` entries, newest first.
    func newest(_ count: Int) -> [Entry] { state.withLock { Array($0.entries.suffix(count).reversed()) } }
    var count: Int { state.withLock { $0.entries.count } }
    func reset() { state.withLock { $0.entries.removeAll() } }

    static func command(_ shard: Shard, _ conn: Connection, _ args: [Bytes], _ reply: ReplyWriter) -> Bool {
        let log = shard.server.slowlog
        let sub = args[1]
        if sub.equalsIgnoringCase("get") && args.count <= 3 {
            var count = 10
            if args.count == 3 {
                guard let n = Numbers.int(args[2]), n >= -1 else {
                    reply.error("ERR count should be greater than or equal to -1")
                    return true
                }
                count = n == -1 ? Int.max : n
            }
            let entries = log.newest(count)
            reply.arrayHeader(entries.count)
            for e in entries {
                reply.arrayHeader(6)
                reply.integer(e.id)
                reply.integer(e.time)
                reply.integer(e.microseconds)
                reply.arrayHeader(e.args.count)
                for a in e.args { reply.bulk(a) }
                reply.bulk(Bytes(e.peer))
                reply.bulk(Bytes(e.name))
            }
            return false
        }
        if sub.equalsIgnoringCase("len") && args.count == 2 { reply.integer(log.count); return false }
        if sub.equalsIgnoringCase("reset") && args.count == 2 { log.reset(); reply.ok(); return false }
        if sub.equalsIgnoringCase("help") && args.count == 2 {
            reply.simpleLines([
                "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GET [<count>]",
                "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
                "    Entries are made of:",
                "    id, timestamp, time in microseconds, arguments array, client IP and port,",
                "    client name",
                "LEN",
                "    Return the length of the slowlog.",
                "RESET",
                "    Reset the slowlog.",
                "HELP",
                "    Prints this help.",
            ])
            return false
        }
        if sub.equalsIgnoringCase("get") {
            reply.error("ERR unknown subcommand or wrong number of arguments for '\(sub.string)'. Try SLOWLOG HELP.")
        } else if ["len", "reset", "help"].contains(sub.string.lowercased()) {
            reply.error(CommandError.wrongArity("slowlog|\(sub.string.lowercased())").message)
        } else {
            reply.error(CommandError.unknownSubcommand(sub, "slowlog").message)
        }
        return true
    }
}
