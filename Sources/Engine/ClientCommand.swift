import Commands
import Keyspace
import RESP

/// CLIENT subcommands. LIST and KILL visit every shard through `gather`, because each
/// connection's state belongs to its home shard's thread.
enum ClientCommand {
    static func run(_ shard: Shard, _ conn: Connection, _ args: [Bytes], _ reply: ReplyWriter) -> Bool {
        let sub = args[1]
        func arity(_ ok: Bool) -> Bool {
            if !ok { reply.error("ERR wrong number of arguments for 'client|\(sub.string.lowercased())' command") }
            return ok
        }
        if sub.equalsIgnoringCase("id") {
            guard arity(args.count == 2) else { return true }
            reply.integer(conn.id)
        } else if sub.equalsIgnoringCase("setname") {
            guard arity(args.count == 3) else { return true }
            guard validName(args[2]) else {
                reply.error("ERR Client names cannot contain spaces, newlines or special characters.")
                return true
            }
            conn.name = args[2].string
            reply.ok()
        } else if sub.equalsIgnoringCase("getname") {
            guard arity(args.count == 2) else { return true }
            if conn.name.isEmpty { reply.null() } else { reply.bulk(conn.name) }
        } else if sub.equalsIgnoringCase("info") {
            guard arity(args.count == 2) else { return true }
            reply.verbatim(conn.infoLine(now: ShardStore.nowMilliseconds(), server: shard.server, shard: shard.index) + "\n")
        } else if sub.equalsIgnoringCase("setinfo") {
            guard arity(args.count == 4) else { return true }
            // Redis's rules: printable text without spaces, as it is shown in CLIENT LIST.
            let value = args[3]
            if value.array.contains(where: { $0 == 10 || $0 == 13 }) {
                reply.error("ERR \(args[2].string) cannot contain newlines"); return true
            }
            if value.array.contains(where: { $0 < 33 || $0 > 126 }) {
                reply.error("ERR \(args[2].string) cannot contain spaces, newlines or special characters."); return true
            }
            if args[2].equalsIgnoringCase("lib-name") {
                conn.libraryName = value.string
            } else if args[2].equalsIgnoringCase("lib-ver") {
                conn.libraryVersion = value.string
            } else {
                reply.error("ERR Unrecognized option '\(args[2].string)'")
                return true
            }
            reply.ok()
        } else if sub.equalsIgnoringCase("no-evict") || sub.equalsIgnoringCase("no-touch") {
            guard arity(args.count == 3) else { return true }
            guard args[2].equalsIgnoringCase("on") || args[2].equalsIgnoringCase("off") else {
                reply.error(CommandError.syntax.message); return true
            }
            if sub.equalsIgnoringCase("no-evict") {
                conn.noEvict = args[2].equalsIgnoringCase("on")
                shard.evictClientsIfOver()  // turned off over the limit: it may go now
            }
            reply.ok()
        } else if sub.equalsIgnoringCase("reply") {
            guard arity(args.count == 3) else { return true }
            if args[2].equalsIgnoringCase("on") {
                conn.repliesOff = false
                conn.skipReplies = 0
                shard.writer(for: conn).ok()
            } else if args[2].equalsIgnoringCase("off") {
                conn.repliesOff = true
            } else if args[2].equalsIgnoringCase("skip") {
                conn.skipReplies = 2
            } else {
                reply.error(CommandError.syntax.message); return true
            }
        } else if sub.equalsIgnoringCase("unblock") {
            guard arity(args.count == 3 || args.count == 4) else { return true }
            return unblock(shard, conn, args, reply)
        } else if sub.equalsIgnoringCase("pause") {
            guard arity(args.count == 3 || args.count == 4) else { return true }
            guard let ms = Numbers.int(args[2]) else { reply.error("ERR timeout is not an integer or out of range"); return true }
            guard ms >= 0 else { reply.error("ERR timeout is negative"); return true }
            var all = true
            if args.count == 4 {
                if args[3].equalsIgnoringCase("write") { all = false }
                else if !args[3].equalsIgnoringCase("all") { reply.error("ERR CLIENT PAUSE mode must be WRITE or ALL"); return true }
            }
            let now = ShardStore.nowMilliseconds()
            shard.server.pause.pause(until: now + Int64(ms), all: all, now: now)
            reply.ok()
        } else if sub.equalsIgnoringCase("unpause") {
            guard arity(args.count == 2) else { return true }
            shard.server.pause.unpause()
            // Wake every shard so parked commands run now, not at the old deadline.
            for s in shard.server.shards where s !== shard { s.post(.run { _ in }) }
            reply.ok()
        } else if sub.equalsIgnoringCase("list") {
            return list(shard, conn, args, reply)
        } else if sub.equalsIgnoringCase("kill") {
            return kill(shard, conn, args, reply)
        } else if sub.equalsIgnoringCase("help") {
            reply.bulkArray(["CLIENT <subcommand> [<arg> ...]", "ID", "INFO", "LIST [TYPE <type>] [ID <id> ...]",
                             "KILL <ip:port> | <option> <value> [...]", "GETNAME", "SETNAME <name>",
                             "SETINFO <LIB-NAME|LIB-VER> <value>", "REPLY ON|OFF|SKIP", "NO-EVICT ON|OFF", "NO-TOUCH ON|OFF",
                             "UNBLOCK <clientid> [TIMEOUT|ERROR]", "PAUSE <timeout> [WRITE|ALL]", "UNPAUSE"])
        } else {
            reply.error(CommandError.unknownSubcommand(sub, "client").message)
            return true
        }
        return false
    }

    static func validName(_ name: Bytes) -> Bool {
        name.withUnsafeBytes { raw in raw.allSatisfy { $0 > 32 && $0 < 127 } }
    }

    private static func list(_ shard: Shard, _ conn: Connection, _ args: [Bytes], _ reply: ReplyWriter) -> Bool {
        var ids: Set<Int>? = nil
        var i = 2
        while i < args.count {
            if args[i].equalsIgnoringCase("type") && i + 1 < args.count {
                let t = args[i + 1].string.lowercased()
                guard ["normal", "master", "replica", "slave", "pubsub"].contains(t) else {
                    reply.error("ERR Unknown client type '\(args[i + 1].string)'"); return true
                }
                if t != "normal" { ids = [] }
                i += 2
            } else if args[i].equalsIgnoringCase("id") && i + 1 < args.count {
                var set = ids ?? []
                i += 1
                while i < args.count {
                    guard let id = Numbers.int(args[i]), id > 0 else { reply.error("ERR Invalid client ID"); return true }
                    set.insert(id); i += 1
                }
                ids = set
            } else {
                reply.error(CommandError.syntax.message); return true
            }
        }
        let filter = ids
        shard.walkClients(conn, work: { s -> [String] in
            let now = ShardStore.nowMilliseconds()
            return s.clients.all.sorted { $0.id < $1.id }
                .filter { filter?.contains($0.id) ?? true }
                .map { $0.infoLine(now: now, server: s.server, shard: s.index) }
        }, finish: { s, c, lines in
            s.writer(for: c).verbatim(lines.flatMap { $0 }.map { $0 + "\n" }.joined())
        })
        return false
    }

    /// CLIENT UNBLOCK id [TIMEOUT|ERROR]: the target's home shard tries the claim.
    private static func unblock(_ shard: Shard, _ conn: Connection, _ args: [Bytes], _ reply: ReplyWriter) -> Bool {
        guard let id = Numbers.int(args[2]) else { reply.error(CommandError.notInteger.message); return true }
        var withError = false
        if args.count == 4 {
            if args[3].equalsIgnoringCase("error") { withError = true }
            else if !args[3].equalsIgnoringCase("timeout") {
                reply.error("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR"); return true
            }
        }
        // Only the client's own shard can end its wait; a blocked client never moves, so a
        // client not there (or unknown) is not blocked.
        guard let home = shard.server.clientShards.shard(of: id) else { reply.integer(0); return false }
        let flag = withError
        shard.gather(conn, only: [shard.server.shards[home]], work: { s in s.blocking.unblock(clientID: id, withError: flag) },
                     finish: { s, c, results in s.writer(for: c).integer(results.contains(true) ? 1 : 0) })
        return false
    }

    struct KillFilter: Sendable {
        var id: Int? = nil
        var addr: String? = nil
        var laddr: String? = nil
        var user: String? = nil
        var type: String? = nil
        /// Valkey's MAXAGE: clients connected longer than this many seconds.
        var maxAge: Int64? = nil
        var skipSelf = true
        var requester = 0

        func matches(_ c: Connection) -> Bool {
            if let maxAge, (ShardStore.nowMilliseconds() - c.createdAt) / 1000 <= maxAge { return false }
            if let id, c.id != id { return false }
            if let addr, c.peer != addr { return false }
            if let laddr, c.local != laddr { return false }
            if let user, user != "default" { return false }
            if let type, type != "normal" { return false }
            if skipSelf && c.id == requester { return false }
            return true
        }
    }

    private static func kill(_ shard: Shard, _ conn: Connection, _ args: [Bytes], _ reply: ReplyWriter) -> Bool {
        var f = KillFilter(requester: conn.id)
        let oldForm = args.count == 3
        if oldForm {
            f.addr = args[2].string
            f.skipSelf = false
        } else {
            var i = 2
            guard args.count % 2 == 0 else { reply.error(CommandError.syntax.message); return true }
            while i + 1 < args.count {
                let v = args[i + 1]
                if args[i].equalsIgnoringCase("id") {
                    guard let id = Numbers.int(v), id > 0 else { reply.error("ERR client-id should be greater than 0"); return true }
                    f.id = id
                } else if args[i].equalsIgnoringCase("addr") { f.addr = v.string }
                else if args[i].equalsIgnoringCase("laddr") { f.laddr = v.string }
                else if args[i].equalsIgnoringCase("maxage") {
                    guard let age = Numbers.int(v) else { reply.error(CommandError.notInteger.message); return true }
                    guard age > 0 else { reply.error("ERR maxage should be greater than 0"); return true }
                    f.maxAge = Int64(age)
                }
                else if args[i].equalsIgnoringCase("user") {
                    // Berth has one user (ACLs come later): any other name is unknown.
                    guard v.string == "default" else { reply.error("ERR No such user '\(v.string)'"); return true }
                    f.user = v.string
                }
                else if args[i].equalsIgnoringCase("type") {
                    let t = v.string.lowercased()
                    guard ["normal", "master", "replica", "slave", "pubsub"].contains(t) else {
                        reply.error("ERR Unknown client type '\(v.string)'"); return true
                    }
                    f.type = t
                } else if args[i].equalsIgnoringCase("skipme") {
                    if v.equalsIgnoringCase("yes") { f.skipSelf = true } else if v.equalsIgnoringCase("no") { f.skipSelf = false }
                    else { reply.error(CommandError.syntax.message); return true }
                } else {
                    reply.error(CommandError.syntax.message); return true
                }
                i += 2
            }
        }
        let filter = f
        let requesterID = conn.id
        shard.walkClients(conn, work: { s -> (Int, Bool) in
            var killed = 0, killedSelf = false
            for c in Array(s.clients.all) where filter.matches(c) {
                killed += 1
                if c.id == requesterID { killedSelf = true } else { s.kill(c) }
            }
            return (killed, killedSelf)
        }, finish: { s, c, results in
            let total = results.reduce(0) { $0 + $1.0 }
            let out = s.writer(for: c)
            if oldForm {
                if total == 0 { out.error("ERR No such client") } else { out.ok() }
            } else {
                out.integer(total)
            }
            if results.contains(where: { $0.1 }) { c.closeAfterFlush = true }
        })
        return false
    }
}
