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
            return list(all, Array(args.dropFirst(2)), shard.server.extensions.modules, reply)
        } else if sub.equalsIgnoringCase("info") {
            let names = args.count > 2 ? Array(args.dropFirst(2)) : all.map { Bytes($0.name) }
            reply.arrayHeader(names.count)
            for n in names {
                if let spec = table.lookup(n) {
                    info(spec, reply)
                } else if let (container, sub) = subcommand(n, table) {
                    let full = "\(container.name)|\(sub)"
                    let m = RedisCommandMetadata.byName[full] ?? RedisCommandMetadata(arity: -2, flags: [], first: 0, last: 0, step: 0, categories: [])
                    entry(full, arity: m.arity, m, subcommands: [], reply)
                } else {
                    reply.nullArray()
                }
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
            let keys = keyPositions(spec, cmd).map { cmd[$0] }
            if keys.isEmpty {
                // Commands whose keys are optional (EVAL with none) answer an empty list.
                let flags = RedisCommandMetadata.byName[spec.name]?.flags ?? []
                guard flags.contains("no_mandatory_keys") else { reply.error("ERR The command has no key arguments"); return true }
            }
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

    /// Key positions of `cmd`: a container's subcommand (MEMORY USAGE) by Redis's key range
    /// for it, every other command by its own key spec.
    private static func keyPositions(_ spec: CommandSpec, _ cmd: [Bytes]) -> [Int] {
        if !spec.subcommands.isEmpty, cmd.count > 1,
           let sub = RedisCommandMetadata.byName["\(spec.name)|\(cmd[1].string.lowercased())"], sub.first > 0 {
            return KeySpec(sub.first, sub.last, sub.step).positions(cmd)
        }
        return spec.keys.positions(cmd)
    }

    /// `container|sub` when the container exists and has that subcommand.
    private static func subcommand(_ name: Bytes, _ table: CommandTable) -> (CommandSpec, String)? {
        let parts = name.string.lowercased().split(separator: "|", omittingEmptySubsequences: false)
        guard parts.count == 2, let spec = table.lookup(Bytes(String(parts[0]))),
              spec.subcommands.contains(String(parts[1])) else { return nil }
        return (spec, String(parts[1]))
    }

    /// COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern]: commands and
    /// their subcommands (`container|sub`), as Redis lists them.
    private static func list(_ all: [CommandSpec], _ filter: [Bytes], _ modules: any ModuleExtension, _ reply: ReplyWriter) -> Bool {
        var names: [String] = []
        for spec in all {
            names.append(spec.name)
            names += spec.subcommands.map { "\(spec.name)|\($0)" }
        }
        guard !filter.isEmpty else { reply.bulkArray(names.map { Bytes($0) }); return false }
        guard filter.count == 3, filter[0].equalsIgnoringCase("filterby") else {
            reply.error(CommandError.syntax.message)
            return true
        }
        let value = filter[2].string
        let kept: [String]
        if filter[1].equalsIgnoringCase("pattern") {
            kept = names.filter { Glob.matchesName(value, $0) }
        } else if filter[1].equalsIgnoringCase("aclcat") {
            kept = names.filter { RedisCommandMetadata.byName[$0]?.categories.contains(value.lowercased()) == true }
        } else if filter[1].equalsIgnoringCase("module") {
            kept = modules.commandNames(ofModule: value) ?? []
        } else {
            reply.error(CommandError.syntax.message)
            return true
        }
        reply.bulkArray(kept.map { Bytes($0) })
        return false
    }

    /// One COMMAND INFO entry: Redis's description where Redis has the command (flags, key
    /// range, ACL categories), Berth's own for the rest (module commands, Berth's own).
    private static func info(_ spec: CommandSpec, _ reply: ReplyWriter) {
        let k = spec.keys
        let own = RedisCommandMetadata(arity: spec.arity, flags: spec.flags.names, first: k.finder != nil ? 1 : k.first,
                                       last: k.finder != nil ? 1 : k.last, step: k.finder != nil ? 1 : k.step, categories: [])
        let described = RedisCommandMetadata.byName[spec.name]
        let subcommands = spec.subcommands.map { sub in
            (name: "\(spec.name)|\(sub)", RedisCommandMetadata.byName["\(spec.name)|\(sub)"]
                ?? RedisCommandMetadata(arity: -2, flags: [], first: 0, last: 0, step: 0, categories: []))
        }
        entry(spec.name, arity: spec.arity, described ?? own, subcommands: subcommands, reply)
    }

    private static func entry(_ name: String, arity: Int, _ m: RedisCommandMetadata,
                              subcommands: [(name: String, RedisCommandMetadata)], _ reply: ReplyWriter) {
        reply.arrayHeader(10)
        reply.bulk(name)
        reply.integer(arity)
        reply.setHeader(m.flags.count)
        for f in m.flags { reply.simple(f) }
        reply.integer(m.first)
        reply.integer(m.last)
        reply.integer(m.step)
        reply.setHeader(m.categories.count)
        for c in m.categories { reply.simple("@" + c) }
        reply.setHeader(0)
        reply.arrayHeader(0)
        reply.arrayHeader(subcommands.count)
        for (subName, sub) in subcommands { entry(subName, arity: sub.arity, sub, subcommands: [], reply) }
    }
}
