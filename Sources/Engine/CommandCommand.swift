import Commands
import Keyspace
import RESP

/// COMMAND, COMMAND COUNT / INFO / DOCS / LIST / GETKEYS, in the Redis 7 reply shapes.
enum CommandCommand {
    static func run(_ shard: Shard, _ conn: Connection, _ args: [Bytes], _ reply: ReplyWriter) -> Bool {
        let table = shard.server.commands
        let all = table.specs.values.sorted { $0.name < $1.name }
        guard args.count > 1 else {
            reply.arrayHeader(all.count)
            for spec in all { info(spec, reply) }
            return false
        }
        let sub = args[1]
        if sub.equalsIgnoringCase("count") {
            reply.integer(all.count)
        } else if sub.equalsIgnoringCase("list") {
            reply.bulkArray(all.map { Bytes($0.name) })
        } else if sub.equalsIgnoringCase("info") {
            let names = args.count > 2 ? Array(args.dropFirst(2)) : all.map { Bytes($0.name) }
            reply.arrayHeader(names.count)
            for n in names {
                if let spec = table.lookup(n) { info(spec, reply) } else { reply.nullArray() }
            }
        } else if sub.equalsIgnoringCase("docs") {
            let specs = args.count > 2 ? args.dropFirst(2).compactMap { table.lookup($0) } : all
            reply.mapHeader(specs.count)
            for spec in specs {
                reply.bulk(spec.name)
                reply.mapHeader(2)
                reply.bulk("summary"); reply.bulk("\(spec.name.uppercased()) command")
                reply.bulk("group"); reply.bulk(spec.flags.contains(.engine) ? "server" : "generic")
            }
        } else if sub.equalsIgnoringCase("getkeys") {
            guard args.count > 2, let spec = table.lookup(args[2]) else {
                reply.error("ERR Invalid command specified"); return true
            }
            let cmd = Array(args.dropFirst(2))
            guard spec.arityMatches(cmd.count) else { reply.error("ERR Invalid number of arguments specified for command"); return true }
            let keys = spec.keys.positions(cmd).map { cmd[$0] }
            guard !keys.isEmpty else { reply.error("ERR The command has no key arguments"); return true }
            reply.bulkArray(keys)
        } else if sub.equalsIgnoringCase("help") {
            reply.bulkArray(["COMMAND <subcommand> [<arg> ...]", "COUNT", "DOCS [<command-name> ...]", "GETKEYS <full-command>",
                             "INFO [<command-name> ...]", "LIST"])
        } else {
            reply.error(CommandError.unknownSubcommand(sub, "command").message)
            return true
        }
        return false
    }

    private static func info(_ spec: CommandSpec, _ reply: ReplyWriter) {
        reply.arrayHeader(10)
        reply.bulk(spec.name)
        reply.integer(spec.arity)
        reply.setHeader(spec.flags.names.count)
        for f in spec.flags.names { reply.simple(f) }
        let k = spec.keys
        reply.integer(k.finder != nil ? 1 : k.first)
        reply.integer(k.finder != nil ? 1 : k.last)
        reply.integer(k.finder != nil ? 1 : k.step)
        reply.setHeader(0)
        reply.setHeader(0)
        reply.arrayHeader(0)
        reply.arrayHeader(spec.subcommands.count)
        for sub in spec.subcommands {
            reply.arrayHeader(10)
            reply.bulk("\(spec.name)|\(sub)")
            reply.integer(-2)
            reply.setHeader(0)
            reply.integer(0); reply.integer(0); reply.integer(0)
            reply.setHeader(0); reply.setHeader(0); reply.arrayHeader(0); reply.arrayHeader(0)
        }
    }
}
