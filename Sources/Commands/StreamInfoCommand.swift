import Keyspace
import RESP

/// XINFO STREAM [FULL [COUNT n]], XINFO GROUPS, XINFO CONSUMERS: maps in RESP3, flat
/// field/value arrays in RESP2, with Redis's field names and order.
enum StreamInfoCommand {
    static let spec = CommandSpec("xinfo", arity: -2, flags: [.readonly], keys: KeySpec(2, 2, 1),
                                  subcommands: ["stream", "groups", "consumers", "help"], handler: run)

    static func run(_ ctx: CommandContext) throws(CommandError) {
        let sub = ctx.args[1]
        func arity(_ ok: Bool) throws(CommandError) {
            if !ok { throw .wrongArity("xinfo|\(sub.string.lowercased())") }
        }
        if sub.equalsIgnoringCase("help") {
            try arity(ctx.args.count == 2)
            // Redis's text, its missing bracket included.
            ctx.reply.bulkArray([
                "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CONSUMERS <key> <groupname>",
                "    Show consumers of <groupname>.",
                "GROUPS <key>",
                "    Show the stream consumer groups.",
                "STREAM <key> [FULL [COUNT <count>]",
                "    Show information about the stream.",
                "HELP",
                "    Prints this help.",
            ].map { Bytes($0) })
            return
        }
        let isStream = sub.equalsIgnoringCase("stream"), isGroups = sub.equalsIgnoringCase("groups")
        let isConsumers = sub.equalsIgnoringCase("consumers")
        guard isStream || isGroups || isConsumers else { throw .unknownSubcommand(sub, "xinfo") }
        if isStream { try arity(ctx.args.count >= 3) } else if isGroups { try arity(ctx.args.count == 3) } else { try arity(ctx.args.count == 4) }
        let key = ctx.args[2]
        guard let s = try ctx.stream(key) else { throw CommandError("ERR no such key") }
        let w = ctx.reply
        if isGroups {
            let groups = sortedGroups(s)
            w.arrayHeader(groups.count)
            for g in groups {
                w.mapHeader(6)
                w.bulk("name"); w.bulk(g.name)
                w.bulk("consumers"); w.integer(g.consumers.count)
                w.bulk("pending"); w.integer(g.pending.count)
                w.bulk("last-delivered-id"); w.bulk(g.lastDelivered.bytes)
                w.bulk("entries-read"); optional(w, g.entriesRead)
                w.bulk("lag"); optional(w, s.lag(of: g))
            }
            return
        }
        if isConsumers {
            let group = ctx.args[3]
            guard let g = s.groups[group] else {
                throw CommandError("NOGROUP No such consumer group '\(group.string)' for key name '\(key.string)'")
            }
            let consumers = g.consumers.values.sorted { $0.name.string < $1.name.string }
            w.arrayHeader(consumers.count)
            for c in consumers {
                // Redis 7.2's fields: "inactive" counts from the last read or claim.
                w.mapHeader(4)
                w.bulk("name"); w.bulk(c.name)
                w.bulk("pending"); w.integer(c.pending.count)
                w.bulk("idle"); w.integer(Int(max(0, ctx.now - c.seenTime)))
                w.bulk("inactive"); w.integer(c.activeTime == -1 ? -1 : Int(ctx.now - c.activeTime))
            }
            return
        }
        var full = false
        var count = 10
        var i = 3
        while i < ctx.args.count {
            if ctx.option(i, "full") { full = true; i += 1 }
            else if full && ctx.option(i, "count") && i + 1 < ctx.args.count { count = max(0, try ctx.int(i + 1)); i += 2 }
            else { throw .syntax }
        }
        w.mapHeader(full ? 9 : 10)
        w.bulk("length"); w.integer(s.count)
        w.bulk("radix-tree-keys"); w.integer(s.nodeCount)
        // Inner radix-tree nodes have no counterpart in Berth: the fewest a tree has.
        w.bulk("radix-tree-nodes"); w.integer(s.nodeCount + 1)
        w.bulk("last-generated-id"); w.bulk(s.lastID.bytes)
        w.bulk("max-deleted-entry-id"); w.bulk(s.maxDeletedID.bytes)
        w.bulk("entries-added"); w.integer(s.entriesAdded)
        w.bulk("recorded-first-entry-id"); w.bulk((s.firstID ?? .zero).bytes)
        if !full {
            w.bulk("groups"); w.integer(s.groups.count)
            w.bulk("first-entry"); if let e = s.entries.first { StreamCommands.writeEntry(w, e) } else { w.null() }
            w.bulk("last-entry"); if let e = s.entries.last { StreamCommands.writeEntry(w, e) } else { w.null() }
            return
        }
        w.bulk("entries")
        StreamCommands.writeEntries(w, s.range(.zero, .max, limit: count == 0 ? Int.max : count))
        w.bulk("groups")
        let groups = sortedGroups(s)
        w.arrayHeader(groups.count)
        for g in groups {
            w.mapHeader(7)
            w.bulk("name"); w.bulk(g.name)
            w.bulk("last-delivered-id"); w.bulk(g.lastDelivered.bytes)
            w.bulk("entries-read"); optional(w, g.entriesRead)
            w.bulk("lag"); optional(w, s.lag(of: g))
            w.bulk("pel-count"); w.integer(g.pending.count)
            let pel = limited(g.pendingIDs, count)
            w.bulk("pending"); w.arrayHeader(pel.count)
            for id in pel {
                let p = g.pending[id]!
                w.arrayHeader(4); w.bulk(id.bytes); w.bulk(p.consumer); w.integer(Int(p.deliveryTime)); w.integer(p.deliveryCount)
            }
            let consumers = g.consumers.values.sorted { $0.name.string < $1.name.string }
            w.bulk("consumers"); w.arrayHeader(consumers.count)
            for c in consumers {
                w.mapHeader(5)
                w.bulk("name"); w.bulk(c.name)
                w.bulk("seen-time"); w.integer(Int(c.seenTime))
                w.bulk("active-time"); w.integer(Int(c.activeTime))
                w.bulk("pel-count"); w.integer(c.pending.count)
                let own = limited(c.pending.sorted(), count)
                w.bulk("pending"); w.arrayHeader(own.count)
                for id in own {
                    let p = g.pending[id]!
                    w.arrayHeader(3); w.bulk(id.bytes); w.integer(Int(p.deliveryTime)); w.integer(p.deliveryCount)
                }
            }
        }
    }

    private static func sortedGroups(_ s: StreamValue) -> [ConsumerGroup] {
        s.groups.values.sorted { $0.name.string < $1.name.string }
    }

    private static func limited(_ ids: [StreamID], _ count: Int) -> ArraySlice<StreamID> {
        count == 0 ? ids[...] : ids.prefix(count)
    }

    private static func optional(_ w: ReplyWriter, _ v: Int?) {
        if let v { w.integer(v) } else { w.null() }
    }
}
