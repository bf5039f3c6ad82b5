import Commands
import Keyspace
import RESP
#if canImport(Glibc)
import Glibc
#endif

/// An engine command: it works on the connection or the server rather than on keys.
/// Returns true when it replied with an error.
package typealias EngineHandler = @Sendable (Shard, Connection, [Bytes], ReplyWriter) -> Bool

/// Connection, transaction and server commands (PING, HELLO, AUTH, SELECT, MULTI/EXEC,
/// CLIENT, CONFIG, INFO, COMMAND, SHUTDOWN...).
package enum EngineCommands {
    package static func spec(_ name: String, _ arity: Int, _ flags: CommandFlags, subcommands: [String] = []) -> CommandSpec {
        CommandSpec(name, arity: arity, flags: flags.union(.engine), subcommands: subcommands)
    }

    static let table: [(CommandSpec, EngineHandler)] = [
        (spec("ping", -1, [.fast, .stale]), { _, conn, args, reply in
            if args.count > 2 { reply.error(CommandError.wrongArity("ping").message); return true }
            if conn.protocolVersion == 2 && conn.isSubscribed {
                // Subscribed RESP2 clients get PING's answer in the shape of a message.
                reply.arrayHeader(2)
                reply.bulk(Bytes("pong"))
                reply.bulk(args.count == 2 ? args[1] : Bytes())
                return false
            }
            if args.count == 2 { reply.bulk(args[1]) } else { reply.simple("PONG") }
            return false
        }),
        (spec("echo", 2, [.fast]), { _, _, args, reply in reply.bulk(args[1]); return false }),
        (spec("select", 2, [.fast, .loading, .stale]), { shard, conn, args, reply in
            guard let n = Numbers.int(args[1]) else { reply.error(CommandError.notInteger.message); return true }
            guard n >= 0 && n < shard.server.databaseCount else { reply.error(CommandError.dbIndexOutOfRange.message); return true }
            conn.db = n
            reply.ok()
            return false
        }),
        (spec("quit", -1, [.noAuth, .fast, .transaction]), { _, conn, _, reply in
            reply.ok()
            conn.closeAfterFlush = true
            return false
        }),
        (spec("reset", 1, [.noAuth, .fast, .transaction]), { shard, conn, _, _ in
            conn.transaction = nil
            shard.unwatchAll(conn)
            shard.unsubscribeAll(conn)
            shard.stopMonitoring(conn)
            conn.db = 0
            conn.protocolVersion = 2
            conn.name = ""
            conn.repliesOff = false
            conn.skipReplies = 0
            conn.authenticated = !shard.server.config.hasPassword.load(ordering: .acquiring)
            shard.writer(for: conn).simple("RESET")
            return false
        }),
        (spec("auth", -2, [.noAuth, .fast, .loading, .stale]), { shard, conn, args, reply in
            guard args.count <= 3 else { reply.error(CommandError.syntax.message); return true }
            return authenticate(shard, conn, user: args.count == 3 ? args[1] : nil, password: args.last!, reply: reply)
        }),
        (spec("hello", -1, [.noAuth, .fast, .loading, .stale]), hello),
        (spec("multi", 1, [.fast, .transaction, .loading, .stale]), { _, conn, _, reply in
            if conn.transaction != nil { reply.error("ERR MULTI calls can not be nested"); return true }
            conn.transaction = Transaction()
            reply.ok()
            return false
        }),
        (spec("exec", 1, [.transaction, .loading, .stale]), { shard, conn, _, reply in shard.exec(conn, reply) }),
        (spec("discard", 1, [.fast, .transaction, .loading, .stale]), { shard, conn, _, reply in
            guard conn.transaction != nil else { reply.error("ERR DISCARD without MULTI"); return true }
            conn.transaction = nil
            shard.unwatchAll(conn)
            reply.ok()
            return false
        }),
        (spec("watch", -2, [.fast, .transaction, .loading, .stale]), { shard, conn, args, reply in
            if conn.transaction != nil { reply.error("ERR WATCH inside MULTI is not allowed"); return true }
            shard.watch(conn, args[1...])
            reply.ok()
            return false
        }),
        (spec("unwatch", 1, [.fast, .loading, .stale]), { shard, conn, _, reply in
            shard.unwatchAll(conn)
            reply.ok()
            return false
        }),
        (spec("time", 1, [.fast, .loading, .stale]), { _, _, _, reply in
            var ts = timespec()
            clock_gettime(CLOCK_REALTIME, &ts)
            reply.arrayHeader(2)
            reply.bulk(String(ts.tv_sec))
            reply.bulk(String(ts.tv_nsec / 1000))
            return false
        }),
        (spec("lastsave", 1, [.fast, .loading, .stale]), { shard, _, _, reply in
            reply.integer(Int(shard.server.snapshots.lastSaveTime()))
            return false
        }),
        (spec("save", 1, [.admin, .noMulti]), { shard, _, _, reply in
            if let error = shard.server.snapshots.save(on: shard) { reply.error(error); return true }
            reply.ok()
            return false
        }),
        (spec("bgsave", -1, [.admin]), { shard, _, args, reply in
            if args.count > 2 || (args.count == 2 && !args[1].equalsIgnoringCase("schedule")) {
                reply.error(CommandError.syntax.message)
                return true
            }
            let snapshots = shard.server.snapshots!
            if args.count == 2 && snapshots.runningPurpose == .aofRewrite {
                // SCHEDULE: it starts once the rewrite ends, as Redis answers it.
                snapshots.scheduleSave()
                reply.simple("Background saving scheduled")
                return false
            }
            if let error = snapshots.backgroundSave(on: shard.section) {
                reply.error(error)
                return true
            }
            reply.simple("Background saving started")
            return false
        }),
        (spec("bgrewriteaof", 1, [.admin]), { shard, _, _, reply in
            let server = shard.server
            guard let aof = server.aof else {
                reply.error("ERR Background AOF rewriting needs the append-only file: turn it on with CONFIG SET appendonly yes")
                return true
            }
            switch server.snapshots.runningPurpose {
            case .aofRewrite:
                reply.error("ERR Background append only file rewriting already in progress")
                return true
            case .rdb:
                aof.scheduleRewrite()
                reply.simple("Background append only file rewriting scheduled")
                return false
            case nil:
                if let error = server.snapshots.backgroundRewrite(aof, on: shard.section) {
                    reply.error(error)
                    return true
                }
                reply.simple("Background append only file rewriting started")
                return false
            }
        }),
        (spec("client", -2, [.noMulti, .loading, .stale],
              subcommands: ["id", "setname", "getname", "info", "list", "kill", "reply", "setinfo", "no-evict", "no-touch",
                            "unblock", "pause", "unpause", "help"]),
         ClientCommand.run),
        (spec("config", -2, [.admin, .loading, .stale], subcommands: ["get", "set", "resetstat", "rewrite", "help"]), ConfigCommand.run),
        (spec("info", -1, [.noMulti, .loading, .stale]), InfoCommand.run),
        (spec("memory", -2, [.readonly, .noMulti], subcommands: ["usage", "stats", "doctor", "purge", "malloc-stats", "help"]),
         MemoryCommand.run),
        (spec("role", 1, [.loading, .stale, .fast]), { _, _, _, reply in
            // A primary without replicas: its replication offset stays 0.
            reply.arrayHeader(3); reply.bulk(Bytes("master")); reply.integer(0); reply.arrayHeader(0)
            return false
        }),
        (spec("monitor", 1, [.admin, .noMulti, .loading, .stale]), Shard.monitorCommand),
        (spec("slowlog", -2, [.admin, .loading, .stale], subcommands: ["get", "len", "reset", "help"]), SlowLog.command),
        (spec("command", -1, [.loading, .stale], subcommands: ["count", "info", "docs", "list", "getkeys", "help"]), CommandCommand.run),
        (spec("shutdown", -1, [.admin, .noMulti, .loading, .stale]), { shard, conn, args, reply in
            for a in args.dropFirst() {
                guard ["nosave", "save", "now", "force", "abort"].contains(a.string.lowercased()) else {
                    reply.error(CommandError.syntax.message); return true
                }
            }
            if args.dropFirst().contains(where: { $0.equalsIgnoringCase("abort") }) {
                reply.error("ERR No shutdown in progress.")
                return true
            }
            let save = args.dropFirst().contains { $0.equalsIgnoringCase("save") }
            let noSave = args.dropFirst().contains { $0.equalsIgnoringCase("nosave") }
            if save && noSave { reply.error(CommandError.syntax.message); return true }
            let mode: Server.ShutdownSave = save ? .save : noSave ? .noSave : .asConfigured
            shard.server.shutdownSave.store(mode.rawValue, ordering: .releasing)
            if shard.server.scriptBusy.running.load(ordering: .acquiring) != 0 {
                // A script that wrote holds every shard: the only way out is to stop hard.
                shard.server.log.warning("SHUTDOWN NOSAVE during a busy script: exiting without waiting for it")
                _exit(0)
            }
            shard.server.log.warning("User requested shutdown...")
            shard.server.requestShutdown()
            conn.closeAfterFlush = true
            return false
        }),
        (spec("debug", -2, [.admin, .noMulti, .loading, .stale], subcommands: ["sleep", "set-active-expire", "reload", "loadaof", "populate", "help"]), { shard, conn, args, reply in
            if args[1].equalsIgnoringCase("set-active-expire") && args.count == 3 {
                // As in Redis: 0 stops the periodic expiry, so tests can watch lazy expiry.
                guard let on = Numbers.int(args[2]) else { reply.error(CommandError.notInteger.message); return true }
                shard.server.activeExpiry.store(on != 0, ordering: .relaxed)
                reply.ok()
                return false
            }
            if args[1].equalsIgnoringCase("sleep") && args.count == 3 {
                guard let s = Numbers.double(args[2]) else { reply.error(CommandError.notFloat.message); return true }
                // Like Redis, DEBUG SLEEP blocks the thread running it: here one shard, not the server.
                if s > 0 { usleep(UInt32(min(s, 3600) * 1_000_000)) }
                reply.ok()
                return false
            }
            if args[1].equalsIgnoringCase("reload") {
                return debugReload(shard, args, reply)
            }
            if args[1].equalsIgnoringCase("populate") && (3...5).contains(args.count) {
                return debugPopulate(shard, conn, args, reply)
            }
            if args[1].equalsIgnoringCase("loadaof") && args.count == 2 {
                if let error = shard.server.reloadAppendOnlyFile(on: shard) { reply.error(error); return true }
                reply.ok()
                return false
            }
            if args[1].equalsIgnoringCase("help") {
                reply.bulkArray(["DEBUG <subcommand>", "LOADAOF", "    Write the AOF, empty the data set and replay the AOF into it.",
                                 "RELOAD [NOSAVE] [NOFLUSH]",
                                 "    Save the RDB file, empty the data set and load the file back.",
                                 "POPULATE <count> [<prefix>] [<size>]",
                                 "    Create <count> string keys named key:<num> (or <prefix>:<num>) holding value:<num>,",
                                 "    zero-padded or cut to <size> bytes when given; existing keys are left alone.",
                                 "SLEEP <seconds>", "    Stop the shard running it for <seconds>.",
                                 "SET-ACTIVE-EXPIRE <0|1>", "    Turn the periodic expiry of keys off (0) or on (1)."])
                return false
            }
            reply.error(CommandError.unknownSubcommand(args[1], "debug").message)
            return true
        }),
    ]

    /// DEBUG POPULATE count [prefix] [size]: Redis's quick way to fill a database with
    /// string keys for tests and memory measurements (`prefix:N` -> `value:N`, padded with
    /// zero bytes or cut to `size`), skipping keys that exist. Like Redis's, it writes
    /// around the command path: nothing goes to the effect stream or the append-only file,
    /// and maxmemory is not consulted. Runs under every shard lock.
    static func debugPopulate(_ shard: Shard, _ conn: Connection, _ args: [Bytes], _ reply: ReplyWriter) -> Bool {
        // redis-server 7.0 gives one error for a negative count and for one that is no
        // number at all.
        func positive(_ b: Bytes) -> Int? {
            guard let n = Numbers.int(b), n >= 0 else { reply.error("ERR value is out of range, must be positive"); return nil }
            return n
        }
        guard let count = positive(args[2]) else { return true }
        let prefix = args.count >= 4 ? args[3].array : Array("key".utf8)
        var size = 0
        if args.count == 5 {
            guard let n = positive(args[4]) else { return true }
            size = n
        }
        let server = shard.server
        let section: LockSection = shard.section
        guard section.enter(section.everyShard, .refuseWhenBusy) else {
            reply.error("BUSY Berth is busy running a script.")
            return true
        }
        let now = ShardStore.nowMilliseconds()
        let watched = server.watchedKeys.load(ordering: .relaxed) > 0
        for j in 0..<count {
            let key = Bytes(prefix + Array(":\(j)".utf8))
            let db = server.stores[server.slots.shard(of: key)].databases[conn.db]
            guard db.lookup(key, now: now) == nil else { continue }
            var value = Array("value:\(j)".utf8)
            if size > 0 {
                value = Array(value.prefix(size))
                value += [UInt8](repeating: 0, count: size - value.count)
            }
            db.add(key, .string(Bytes(value)))
            if watched { shard.touchWatchers(of: [key], db: conn.db) }
        }
        section.leave(section.everyShard)
        reply.ok()
        return false
    }

    /// DEBUG RELOAD [NOSAVE] [NOFLUSH] [MERGE]: saves, empties the keyspace and loads the
    /// file back, under every shard lock, as Redis's test suites use it to check that
    /// every type survives a round trip.
    static func debugReload(_ shard: Shard, _ args: [Bytes], _ reply: ReplyWriter) -> Bool {
        var save = true, flush = true
        for a in args.dropFirst(2) {
            if a.equalsIgnoringCase("nosave") { save = false }
            else if a.equalsIgnoringCase("noflush") { flush = false }
            else if !a.equalsIgnoringCase("merge") { reply.error(CommandError.syntax.message); return true }
        }
        let server = shard.server
        if save, let error = server.snapshots.save(on: shard) {
            reply.error(error == "ERR" ? "ERR Error trying to save the DB" : error)
            return true
        }
        let section: LockSection = shard.section
        guard section.enter(section.everyShard, .refuseWhenBusy) else {
            reply.error("BUSY Berth is busy running a script.")
            return true
        }
        if flush { for store in server.stores { for db in store.databases { db.removeAll() } } }
        let loaded = server.loadSnapshotFile(replacingLibraries: true)
        section.leave(section.everyShard)
        guard loaded else { reply.error("ERR Error trying to load the RDB dump, check server logs."); return true }
        reply.ok()
        return false
    }

    static func authenticate(_ shard: Shard, _ conn: Connection, user: Bytes?, password: Bytes, reply: ReplyWriter) -> Bool {
        let required = shard.server.config.get("requirepass")
        if required.isEmpty {
            // Without requirepass the default user takes any password; no other user exists.
            guard let user else {
                reply.error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
                return true
            }
            guard user == Bytes("default") else {
                reply.error("WRONGPASS invalid username-password pair or user is disabled.")
                return true
            }
            conn.authenticated = true
            reply.ok()
            return false
        }
        guard user == nil || user! == Bytes("default"), password == Bytes(required) else {
            reply.error("WRONGPASS invalid username-password pair or user is disabled.")
            return true
        }
        conn.authenticated = true
        reply.ok()
        return false
    }

    static func hello(_ shard: Shard, _ conn: Connection, _ args: [Bytes], _ reply: ReplyWriter) -> Bool {
        var version = conn.protocolVersion
        var i = 1
        if args.count > 1 {
            guard let v = Numbers.int(args[1]) else {
                reply.error("ERR Protocol version is not an integer or out of range"); return true
            }
            guard v == 2 || v == 3 else { reply.error("NOPROTO unsupported protocol version"); return true }
            version = v
            i = 2
        }
        var setName: Bytes? = nil
        while i < args.count {
            if args[i].equalsIgnoringCase("auth") && i + 2 < args.count {
                let quiet = ReplyWriter(buffer: shard.discard, protocolVersion: version)
                shard.discard.clear()
                if authenticate(shard, conn, user: args[i + 1], password: args[i + 2], reply: quiet) {
                    reply.error("WRONGPASS invalid username-password pair or user is disabled.")
                    return true
                }
                i += 3
            } else if args[i].equalsIgnoringCase("setname") && i + 1 < args.count {
                setName = args[i + 1]
                i += 2
            } else {
                reply.error("ERR Syntax error in HELLO option '\(args[i].string)'")
                return true
            }
        }
        guard conn.authenticated else {
            reply.error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
            return true
        }
        if let setName {
            guard ClientCommand.validName(setName) else {
                reply.error("ERR Client names cannot contain spaces, newlines or special characters."); return true
            }
            conn.name = setName.string
        }
        conn.protocolVersion = version
        let out = ReplyWriter(buffer: reply.buffer, protocolVersion: version)
        out.mapHeader(7)
        out.bulk("server"); out.bulk("redis")
        out.bulk("version"); out.bulk(Server.redisCompatibleVersion)
        out.bulk("proto"); out.integer(version)
        out.bulk("id"); out.integer(conn.id)
        out.bulk("mode"); out.bulk("standalone")
        out.bulk("role"); out.bulk("master")
        out.bulk("modules"); out.emptyArray()
        return false
    }
}
