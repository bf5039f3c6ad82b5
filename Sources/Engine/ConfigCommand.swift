import Commands
import Keyspace
import RESP

/// CONFIG GET / SET / RESETSTAT / REWRITE.
enum ConfigCommand {
    static func run(_ shard: Shard, _ conn: Connection, _ args: [Bytes], _ reply: ReplyWriter) -> Bool {
        let config = shard.server.config
        let sub = args[1]
        if sub.equalsIgnoringCase("get") {
            guard args.count >= 3 else { reply.error("ERR wrong number of arguments for 'config|get' command"); return true }
            let pairs = config.matching(args.dropFirst(2).map { $0.string })
            reply.mapHeader(pairs.count)
            for (k, v) in pairs { reply.bulk(k); reply.bulk(v) }
            return false
        }
        if sub.equalsIgnoringCase("set") {
            guard args.count >= 4 else { reply.error("ERR wrong number of arguments for 'config|set' command"); return true }
            guard args.count % 2 == 0 else { reply.error(CommandError.syntax.message); return true }
            // A name given twice is refused before anything is applied, as Redis 7 does.
            var seen = Set<String>()
            for i in stride(from: 2, to: args.count, by: 2) where !seen.insert(args[i].string.lowercased()).inserted {
                reply.error("ERR CONFIG SET failed (possibly related to argument '\(args[i].string)') - duplicate parameter")
                return true
            }
            // Validate every pair before applying any, as Redis 7 does.
            for i in stride(from: 2, to: args.count, by: 2) {
                do { _ = try config.validate(args[i].string, args[i + 1].string) } catch {
                    reply.error(message(error))
                    return true
                }
            }
            if let failure = rebindIfAsked(shard.server, args) {
                reply.error(failure)
                return true
            }
            if let failure = switchAppendOnlyIfAsked(shard, args) {
                reply.error(failure)
                return true
            }
            for i in stride(from: 2, to: args.count, by: 2) {
                try? config.set(args[i].string, args[i + 1].string)
            }
            shard.server.applyKeyEventTracking()
            shard.server.snapshots.updateWriteRefusal()
            shard.server.applyFsyncPolicy()
            reply.ok()
            return false
        }
        if sub.equalsIgnoringCase("resetstat") {
            guard args.count == 2 else { reply.error("ERR wrong number of arguments for 'config|resetstat' command"); return true }
            shard.server.errorStats.reset()
            // This shard's own at once, so that RESETSTAT itself counts after it, as in Redis.
            resetStats(shard)
            for s in shard.server.shards where s !== shard { s.post(.run(resetStats)) }
            reply.ok()
            return false
        }
        if sub.equalsIgnoringCase("rewrite") {
            reply.error("ERR The server is running without a config file")
            return true
        }
        if sub.equalsIgnoringCase("help") {
            reply.bulkArray(["CONFIG <subcommand> [<arg> ...]", "GET <pattern>", "SET <directive> <value>", "RESETSTAT", "REWRITE"])
            return false
        }
        reply.error(CommandError.unknownSubcommand(sub, "config").message)
        return true
    }

    /// A new port or bind address is applied before anything else is stored: when the
    /// server cannot listen there, the whole CONFIG SET fails and nothing changes (Redis
    /// rolls back what it applied; here nothing was). Answers the error, if any.
    static func rebindIfAsked(_ server: Server, _ args: [Bytes]) -> String? {
        var port: (value: Int, argument: String)?, host: (value: String, argument: String)?
        for i in stride(from: 2, to: args.count, by: 2) {
            switch args[i].string.lowercased() {
            case "port": port = (Int(args[i + 1].string) ?? server.port, args[i].string)
            case "bind": host = (args[i + 1].string, args[i].string)
            default: break
            }
        }
        let newPort = port?.value ?? server.port, newHost = host?.value ?? server.config.get("bind")
        guard newPort != server.port || newHost != server.config.get("bind") else { return nil }
        do {
            try server.rebind(host: newHost, port: newPort)
            return nil
        } catch {
            server.log.warning("CONFIG SET: \(error)")
            let (argument, reason) = newPort != server.port
                ? (port!.argument, "Unable to listen on this port") : (host!.argument, "Failed to bind to specified addresses.")
            return "ERR CONFIG SET failed (possibly related to argument '\(argument)') - \(reason)"
        }
    }

    /// CONFIG SET appendonly yes|no, turning the append-only file on or off as it goes
    /// (Server.turnAppendOnly); the error reply when it cannot.
    static func switchAppendOnlyIfAsked(_ shard: Shard, _ args: [Bytes]) -> String? {
        for i in stride(from: 2, to: args.count, by: 2) where args[i].equalsIgnoringCase("appendonly") {
            let on = args[i + 1].equalsIgnoringCase("yes")
            return shard.server.turnAppendOnly(on: on, section: shard.section)
        }
        return nil
    }

    static func message(_ e: ServerConfig.SetError) -> String {
        switch e {
        case .unknown(let name):
            return "ERR Unknown option or number of arguments for CONFIG SET - '\(name)'"
        case .immutable(let name):
            return "ERR CONFIG SET failed (possibly related to argument '\(name)') - can't set immutable config"
        case .invalid(let name, let why):
            return "ERR CONFIG SET failed (possibly related to argument '\(name)') - \(why)"
        }
    }
}

/// Zeroes a shard's statistics (CONFIG RESETSTAT), on that shard's thread.
@Sendable private func resetStats(_ target: Shard) {
    target.stats = ShardStats(commandCount: target.server.statsSlots)
    target.latencies.reset()
    target.context.keyspaceHits = 0
    target.context.keyspaceMisses = 0
}
