import Keyspace
import RESP

/// OBJECT ENCODING / FREQ / IDLETIME / REFCOUNT / HELP: what Redis says about a key's
/// representation and use. None of them counts as an access (the key's idle time and
/// frequency stay as they were).
enum ObjectCommand {
    static let spec = CommandSpec("object", arity: -2, flags: [.readonly, .sharedRead], keys: KeySpec(2, 2, 1),
                                  subcommands: ["encoding", "freq", "idletime", "refcount", "help"], handler: run)

    /// Redis's reference count for small integers, which it shares between keys.
    static let sharedRefcount = 2_147_483_647

    static func run(_ ctx: CommandContext) throws(CommandError) {
        let sub = ctx.args[1]
        if sub.equalsIgnoringCase("help") {
            guard ctx.args.count == 2 else { throw .wrongArity("object|help") }
            ctx.reply.bulkArray(help.map { Bytes($0) })
            return
        }
        let name = sub.string.lowercased()
        guard ["encoding", "freq", "idletime", "refcount"].contains(name) else { throw .unknownSubcommand(sub, "object") }
        guard ctx.args.count == 3 else { throw .wrongArity("object|\(name)") }
        guard let e = ctx.peek(ctx.args[2]) else { ctx.reply.null(); return }
        let lfu = KeyAccess.countsFrequency.load(ordering: .relaxed)
        switch name {
        case "encoding":
            ctx.reply.bulk(Bytes(e.value.encodingName))
        case "freq":
            guard lfu else {
                throw CommandError("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.")
            }
            ctx.reply.integer(e.frequency)
        case "idletime":
            guard !lfu else {
                throw CommandError("ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.")
            }
            ctx.reply.integer(e.idleSeconds)
        default:
            ctx.reply.integer(isShared(e.value) ? sharedRefcount : 1)
        }
    }

    /// Redis shares the integers 0-9999 between keys, unless an LRU or LFU policy needs
    /// each key's own access bits.
    static func isShared(_ value: Value) -> Bool {
        guard case .string(let s) = value, s.count <= 4, Value.isCanonicalInteger(s), let n = Numbers.int(s), n >= 0 else { return false }
        return n < 10000 && !KeyAccess.sharesNoIntegers.load(ordering: .relaxed)
    }

    static let help = [
        "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "ENCODING <key>",
        "    Return the kind of internal representation used in order to store the value",
        "    associated with a <key>.",
        "FREQ <key>",
        "    Return the access frequency index of the <key>. The returned integer is",
        "    proportional to the logarithm of the recent access frequency of the key.",
        "IDLETIME <key>",
        "    Return the idle time of the <key>, that is the approximated number of",
        "    seconds elapsed since the last access to the key.",
        "REFCOUNT <key>",
        "    Return the number of references of the value associated with the specified",
        "    <key>.",
        "HELP",
        "    Prints this help.",
    ]
}
