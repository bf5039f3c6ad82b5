import Keyspace
import RESP

/// Consumer groups: XGROUP, XREADGROUP (which blocks through
/// `BlockedOperation.streamGroupRead`), XACK, XPENDING, XCLAIM, XAUTOCLAIM.
enum StreamGroupCommands {
    static let specs: [CommandSpec] = [
        CommandSpec("xgroup", arity: -2, flags: [.write], keys: KeySpec(2, 2, 1),
                    subcommands: ["create", "setid", "destroy", "createconsumer", "delconsumer", "help"], handler: xgroup),
        CommandSpec("xreadgroup", arity: -7, flags: [.write, .blocking], keys: KeySpec(finder: StreamCommands.streamsFinder), handler: xreadgroup),
        CommandSpec("xack", arity: -4, flags: [.write, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            // No stream or group acknowledges nothing, before the IDs are read (as Redis).
            guard let s = try ctx.stream(ctx.args[1]), let g = s.groups[ctx.args[2]] else { ctx.reply.integer(0); return }
            var ids: [StreamID] = []
            for arg in ctx.args[3...] { ids.append(try StreamCommands.strictID(arg)) }
            var acked = 0
            for id in Set(ids) {
                guard let p = g.pending.removeValue(forKey: id) else { continue }
                g.consumers[p.consumer]?.pending.remove(id)
                acked += 1
            }
            ctx.dirty += acked
            ctx.reply.integer(acked)
        },
        CommandSpec("xpending", arity: -3, flags: [.readonly], keys: KeySpec(1, 1, 1), handler: xpending),
        CommandSpec("xclaim", arity: -6, flags: [.write, .fast], keys: KeySpec(1, 1, 1), handler: xclaim),
        CommandSpec("xautoclaim", arity: -6, flags: [.write, .fast], keys: KeySpec(1, 1, 1), handler: xautoclaim),
    ]

    static func noGroup(_ key: Bytes, _ group: Bytes) -> CommandError {
        CommandError("NOGROUP No such key '\(key.string)' or consumer group '\(group.string)'")
    }

    /// The stream and group a command names, or NOGROUP.
    static func streamAndGroup(_ ctx: CommandContext, _ key: Bytes, _ group: Bytes) throws(CommandError) -> (StreamValue, ConsumerGroup) {
        guard let s = try ctx.stream(key), let g = s.groups[group] else { throw noGroup(key, group) }
        return (s, g)
    }

    // MARK: XGROUP

    static func xgroup(_ ctx: CommandContext) throws(CommandError) {
        let sub = ctx.args[1]
        func arity(_ ok: Bool) throws(CommandError) {
            if !ok { throw .wrongArity("xgroup|\(sub.string.lowercased())") }
        }
        if sub.equalsIgnoringCase("help") {
            try arity(ctx.args.count == 2)
            ctx.reply.bulkArray([
                "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CREATE <key> <groupname> <id|$> [option]",
                "    Create a new consumer group. Options are:",
                "    * MKSTREAM",
                "      Create the empty stream if it does not exist.",
                "    * ENTRIESREAD entries_read",
                "      Set the group's entries_read counter (internal use).",
                "CREATECONSUMER <key> <groupname> <consumer>",
                "    Create a new consumer in the specified group.",
                "DELCONSUMER <key> <groupname> <consumer>",
                "    Remove the specified consumer.",
                "DESTROY <key> <groupname>",
                "    Remove the specified group.",
                "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
                "    Set the current group ID and entries_read counter.",
                "HELP",
                "    Prints this help.",
            ].map { Bytes($0) })
            return
        }
        let isCreate = sub.equalsIgnoringCase("create"), isSetID = sub.equalsIgnoringCase("setid")
        if isCreate || isSetID {
            try arity(ctx.args.count >= 5)
        } else if sub.equalsIgnoringCase("destroy") {
            try arity(ctx.args.count == 4)
        } else if sub.equalsIgnoringCase("createconsumer") || sub.equalsIgnoringCase("delconsumer") {
            try arity(ctx.args.count == 5)
        } else {
            throw .unknownSubcommand(sub, "xgroup")
        }
        let key = ctx.args[2], name = ctx.args[3]
        var makeStream = false
        var entriesRead: Int? = nil
        var i = 5
        while i < ctx.args.count {
            if isCreate && ctx.option(i, "mkstream") {
                makeStream = true
                i += 1
            } else if (isCreate || isSetID) && ctx.option(i, "entriesread"), i + 1 < ctx.args.count {
                let n = try ctx.int(i + 1)
                guard n >= -1 else { throw CommandError("ERR value for ENTRIESREAD must be positive or -1") }
                entriesRead = n == -1 ? nil : n
                i += 2
            } else {
                throw .subcommandSyntax(sub, "xgroup")
            }
        }
        // Redis's order: the options, the key, the group (for SETID), the argument count,
        // the ID; MKSTREAM creates the stream only once nothing can fail.
        let existing = try ctx.stream(key)
        guard existing != nil || makeStream else {
            throw CommandError("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.")
        }
        if isSetID, existing?.groups[name] == nil {
            throw CommandError("NOGROUP No such consumer group '\(name.string)' for key name '\(key.string)'")
        }
        if isCreate && ctx.args.count > 8 || isSetID && ctx.args.count != 5 && ctx.args.count != 7 {
            throw .subcommandSyntax(sub, "xgroup")
        }
        let idArg = isCreate || isSetID ? ctx.args[4] : Bytes()
        var explicitID: StreamID? = nil
        if idArg != Bytes("$") && (isCreate || isSetID) {
            // SETID also takes `-` and `+` for the first and last possible IDs; CREATE does not.
            explicitID = isSetID && idArg == Bytes("-") ? .zero : isSetID && idArg == Bytes("+") ? .max
                : try StreamCommands.strictID(idArg)
        }
        let s: StreamValue
        if let existing {
            s = existing
        } else {
            s = StreamValue()
            ctx.db(key).add(key, .stream(s))
        }
        if isCreate || isSetID {
            let id = explicitID ?? s.lastID
            // Without ENTRIESREAD the position is unknown, even at `$` (Redis 7.0).
            let read = entriesRead
            if isCreate {
                guard s.groups[name] == nil else { throw CommandError("BUSYGROUP Consumer Group name already exists") }
                s.groups[name] = ConsumerGroup(name: name, lastDelivered: id, entriesRead: read)
                ctx.notify(.stream, "xgroup-create", key)
            } else {
                guard let g = s.groups[name] else { throw CommandError("NOGROUP No such consumer group '\(name.string)' for key name '\(key.string)'") }
                g.lastDelivered = id
                g.entriesRead = read
                ctx.notify(.stream, "xgroup-setid", key)
            }
            ctx.dirty += 1
            ctx.reply.ok()
            return
        }
        if sub.equalsIgnoringCase("destroy") {
            guard s.groups.removeValue(forKey: name) != nil else { ctx.reply.integer(0); return }
            // Clients blocked in XREADGROUP on this group must hear that it is gone.
            ctx.db(key).signalReady(key)
            ctx.notify(.stream, "xgroup-destroy", key)
            ctx.dirty += 1
            ctx.reply.integer(1)
            return
        }
        guard let g = s.groups[name] else {
            throw CommandError("NOGROUP No such consumer group '\(name.string)' for key name '\(key.string)'")
        }
        let consumer = ctx.args[4]
        if sub.equalsIgnoringCase("createconsumer") {
            let (_, created) = g.consumer(consumer, now: ctx.now)
            if created {
                ctx.dirty += 1
                ctx.notify(.stream, "xgroup-createconsumer", key)
            }
            ctx.reply.integer(created ? 1 : 0)
            return
        }
        guard let c = g.consumers.removeValue(forKey: consumer) else { ctx.reply.integer(0); return }
        for id in c.pending { g.pending.removeValue(forKey: id) }
        ctx.dirty += 1
        ctx.notify(.stream, "xgroup-delconsumer", key)
        ctx.reply.integer(c.pending.count)
    }

    /// The consumer, created (with its keyspace event, as Redis emits it) when missing.
    static func consumerCreatingIfMissing(_ ctx: CommandContext, _ g: ConsumerGroup, _ name: Bytes, of key: Bytes) -> StreamConsumer {
        let (consumer, created) = g.consumer(name, now: ctx.now)
        if created {
            ctx.notify(.stream, "xgroup-createconsumer", key)
            StreamGroupEffects.consumerCreated(ctx, key: key, g, name)
        }
        return consumer
    }

    // MARK: XREADGROUP

    static func noGroupForRead(_ key: Bytes, _ group: Bytes) -> CommandError {
        CommandError("NOGROUP No such key '\(key.string)' or consumer group '\(group.string)' in XREADGROUP with GROUP option")
    }

    static func xreadgroup(_ ctx: CommandContext) throws(CommandError) {
        let req = try ReadRequest.parse(ctx, group: true)
        let (groupName, consumerName) = req.group!
        var groups: [(StreamValue, ConsumerGroup)] = []
        var history: [StreamID?] = []
        for (key, idArg) in zip(req.keys, req.ids) {
            guard let s = try ctx.stream(key), let g = s.groups[groupName] else {
                throw noGroupForRead(key, groupName)
            }
            groups.append((s, g))
            if idArg == Bytes(">") {
                history.append(nil)
            } else if idArg == Bytes("$") {
                throw CommandError("ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.")
            } else {
                // Redis stands for `>` by the last possible ID, so spelling that ID out
                // reads new entries too.
                let id = try StreamCommands.strictID(idArg)
                history.append(id == .max ? nil : id)
            }
        }
        var found: [(Bytes, [ReadItem])] = []
        for (i, key) in req.keys.enumerated() {
            let (s, g) = groups[i]
            // A `>` read with nothing new leaves a missing consumer uncreated, as in Redis;
            // a history read always creates it.
            if history[i] == nil && (s.entries.last?.id ?? .zero) <= g.lastDelivered { continue }
            let consumer = consumerCreatingIfMissing(ctx, g, consumerName, of: key)
            consumer.seenTime = ctx.now
            if let after = history[i] {
                found.append((key, readHistory(ctx, s, g, consumer, after: after, count: req.count)))
            } else {
                let items = deliverNew(ctx, key: key, s, g, consumer, count: req.count, noAck: req.noAck)
                if !items.isEmpty { found.append((key, items)) }
            }
        }
        if !found.isEmpty {
            writeGroupStreams(ctx.reply, found)
            return
        }
        guard let deadline = req.deadline else { ctx.reply.nullArray(); return }
        Blocking.blockOrGiveUp(ctx, keys: req.keys, deadline: deadline,
                               .streamGroupRead(group: groupName, consumer: consumerName, count: req.count, noAck: req.noAck))
    }

    /// An entry as XREADGROUP and XCLAIM return it; nil fields for a deleted entry.
    typealias ReadItem = (id: StreamID, fields: [Bytes]?)

    /// Delivers entries after the group's last delivered ID to `consumer` (the `>` read).
    static func deliverNew(_ ctx: CommandContext, key: Bytes, _ s: StreamValue, _ g: ConsumerGroup, _ consumer: StreamConsumer,
                           count: Int?, noAck: Bool) -> [ReadItem] {
        guard let from = g.lastDelivered.successor else { return [] }
        let entries = s.range(from, .max, limit: count ?? Int.max)
        guard !entries.isEmpty else { return [] }
        for e in entries {
            if let read = g.entriesRead, !s.hasTombstones(from: e.id) {
                g.entriesRead = read + 1
            } else {
                g.entriesRead = s.entriesAdded(through: e.id)
            }
            g.lastDelivered = e.id
            guard !noAck else { continue }
            consumer.activeTime = ctx.now
            let delivered: PendingEntry
            if let old = g.pending[e.id] {
                g.consumers[old.consumer]?.pending.remove(e.id)
                old.consumer = consumer.name
                old.deliveryTime = ctx.now
                old.deliveryCount = 1
                delivered = old
            } else {
                delivered = PendingEntry(consumer: consumer.name, deliveryTime: ctx.now, deliveryCount: 1)
                g.pending[e.id] = delivered
            }
            consumer.pending.insert(e.id)
            StreamGroupEffects.claimed(ctx, key: key, g, e.id, delivered)
        }
        StreamGroupEffects.position(ctx, key: key, g)
        ctx.dirty += 1
        return entries.map { ($0.id, $0.fields) }
    }

    /// The consumer's own pending entries after `after`: a redelivery.
    static func readHistory(_ ctx: CommandContext, _ s: StreamValue, _ g: ConsumerGroup, _ consumer: StreamConsumer,
                            after: StreamID, count: Int?) -> [ReadItem] {
        var items: [ReadItem] = []
        for id in consumer.pending.sorted() where id > after {
            if let count, items.count >= count { break }
            let fields = s.entry(id)?.fields
            items.append((id, fields))
            // An entry deleted from the stream is reported (with no fields), not redelivered.
            if fields != nil, let p = g.pending[id] {
                p.deliveryTime = ctx.now
                p.deliveryCount += 1
            }
        }
        return items
    }

    static func groupReadIsReady(_ ctx: CommandContext, key: Bytes, group: Bytes) -> Bool {
        guard case .stream(let s)? = ctx.lookup(key)?.value, let g = s.groups[group] else { return true }
        return (s.entries.last?.id ?? .zero) > g.lastDelivered
    }

    /// Serves a woken XREADGROUP. As in Redis 7.2, where a woken command is re-run, a
    /// stream that was deleted, retyped or lost its group answers what XREADGROUP itself
    /// would: NOGROUP, or WRONGTYPE.
    static func serveGroupRead(_ ctx: CommandContext, key: Bytes, group: Bytes, consumer: Bytes, count: Int?, noAck: Bool) throws(CommandError) {
        guard let s = try ctx.stream(key), let g = s.groups[group] else {
            throw noGroupForRead(key, group)
        }
        let c = consumerCreatingIfMissing(ctx, g, consumer, of: key)
        c.seenTime = ctx.now
        writeGroupStreams(ctx.reply, [(key, deliverNew(ctx, key: key, s, g, c, count: count, noAck: noAck))])
    }

    static func writeItem(_ w: ReplyWriter, _ item: ReadItem) {
        w.arrayHeader(2)
        w.bulk(item.id.bytes)
        if let fields = item.fields {
            w.arrayHeader(fields.count)
            for f in fields { w.bulk(f) }
        } else {
            w.nullArray()
        }
    }

    static func writeGroupStreams(_ w: ReplyWriter, _ streams: [(Bytes, [ReadItem])]) {
        if w.isRESP3 { w.mapHeader(streams.count) } else { w.arrayHeader(streams.count) }
        for (key, items) in streams {
            if !w.isRESP3 { w.arrayHeader(2) }
            w.bulk(key)
            w.arrayHeader(items.count)
            for item in items { writeItem(w, item) }
        }
    }

    // MARK: XPENDING

    static func xpending(_ ctx: CommandContext) throws(CommandError) {
        let key = ctx.args[1]
        let argc = ctx.args.count
        guard argc == 3 || argc >= 6 else { throw .syntax }
        var i = 3
        var minIdle: Int64 = 0
        if argc >= 6 && ctx.option(3, "idle") {
            minIdle = Int64(try ctx.int(4))
            i = 5
            guard argc - i >= 3 else { throw .syntax }
        }
        var range: (StreamID, StreamID, Int, Bytes?)? = nil
        if argc >= 6 {
            guard argc - i == 3 || argc - i == 4 else { throw .syntax }
            let start = try StreamCommands.rangeBound(ctx.args[i], isStart: true)!
            let end = try StreamCommands.rangeBound(ctx.args[i + 1], isStart: false)!
            let count = max(0, try ctx.int(i + 2))
            range = (start, end, count, argc - i == 4 ? ctx.args[i + 3] : nil)
        }
        let (_, g) = try streamAndGroup(ctx, key, ctx.args[2])
        guard let (start, end, count, consumer) = range else {
            let ids = g.pendingIDs
            guard let first = ids.first, let last = ids.last else {
                ctx.reply.arrayHeader(4); ctx.reply.integer(0); ctx.reply.null(); ctx.reply.null(); ctx.reply.nullArray()
                return
            }
            ctx.reply.arrayHeader(4)
            ctx.reply.integer(ids.count)
            ctx.reply.bulk(first.bytes)
            ctx.reply.bulk(last.bytes)
            let owners = g.consumers.values.filter { !$0.pending.isEmpty }.sorted { $0.name.string < $1.name.string }
            ctx.reply.arrayHeader(owners.count)
            for c in owners {
                ctx.reply.arrayHeader(2)
                ctx.reply.bulk(c.name)
                ctx.reply.bulk(Bytes(String(c.pending.count)))
            }
            return
        }
        let source = consumer.map { g.consumers[$0]?.pending.sorted() ?? [] } ?? g.pendingIDs
        var rows: [(StreamID, PendingEntry)] = []
        for id in source where id >= start && id <= end {
            guard rows.count < count else { break }
            guard let p = g.pending[id], ctx.now - p.deliveryTime >= minIdle else { continue }
            rows.append((id, p))
        }
        ctx.reply.arrayHeader(rows.count)
        for (id, p) in rows {
            ctx.reply.arrayHeader(4)
            ctx.reply.bulk(id.bytes)
            ctx.reply.bulk(p.consumer)
            ctx.reply.integer(Int(max(0, ctx.now - p.deliveryTime)))
            ctx.reply.integer(p.deliveryCount)
        }
    }

    // MARK: XCLAIM / XAUTOCLAIM

    static func xclaim(_ ctx: CommandContext) throws(CommandError) {
        let key = ctx.args[1], consumerName = ctx.args[3]
        // Redis's order: the key's type and the group, then the arguments.
        let (s, g) = try streamAndGroup(ctx, key, ctx.args[2])
        guard let minIdleArg = Numbers.int(ctx.args[4]) else {
            throw CommandError("ERR Invalid min-idle-time argument for XCLAIM")
        }
        let minIdle = Int64(max(0, minIdleArg))
        var ids: [StreamID] = []
        var i = 5
        while i < ctx.args.count, let (ms, seq) = StreamID.parse(ctx.args[i], missingSeq: 0) {
            ids.append(StreamID(ms, seq!))
            i += 1
        }
        var deliveryTime = ctx.now
        var retryCount: Int? = nil
        var force = false, justID = false
        var lastID: StreamID? = nil
        while i < ctx.args.count {
            let more = i + 1 < ctx.args.count
            if ctx.option(i, "force") { force = true; i += 1 }
            else if ctx.option(i, "justid") { justID = true; i += 1 }
            else if ctx.option(i, "idle") && more { deliveryTime = ctx.now - Int64(try ctx.int(i + 1)); i += 2 }
            else if ctx.option(i, "time") && more { deliveryTime = Int64(try ctx.int(i + 1)); i += 2 }
            else if ctx.option(i, "retrycount") && more { retryCount = try ctx.int(i + 1); i += 2 }
            else if ctx.option(i, "lastid") && more { lastID = try StreamCommands.strictID(ctx.args[i + 1]); i += 2 }
            else { throw CommandError("ERR Unrecognized XCLAIM option '\(ctx.args[i].string)'") }
        }
        ctx.recordsOwnEffects()  // what it claimed (StreamGroupEffects), never its arguments
        let positionBefore = g.lastDelivered
        if let lastID, lastID > g.lastDelivered { g.lastDelivered = lastID }
        // The consumer is created only once it claims something, as Redis does.
        var claimer: StreamConsumer? = g.consumers[consumerName]
        claimer?.seenTime = ctx.now
        var claimed: [ReadItem] = []
        for id in ids {
            let consumer = claimer ?? StreamConsumer(name: consumerName, now: ctx.now)
            if g.pending[id] == nil && force, s.entry(id) != nil {
                if claimer == nil {
                    g.consumers[consumerName] = consumer
                    ctx.notify(.stream, "xgroup-createconsumer", ctx.args[1])
                    StreamGroupEffects.consumerCreated(ctx, key: key, g, consumerName)
                    claimer = consumer
                }
                // Redis creates a forced entry as delivered once; the claim below counts again.
                g.pending[id] = PendingEntry(consumer: consumer.name, deliveryTime: deliveryTime, deliveryCount: 1)
                consumer.pending.insert(id)
            }
            guard let p = g.pending[id] else { continue }
            guard let entry = s.entry(id) else {
                // Deleted from the stream: it can never be processed, so it leaves the PEL.
                g.consumers[p.consumer]?.pending.remove(id)
                g.pending.removeValue(forKey: id)
                StreamGroupEffects.dropped(ctx, key: key, g, id)
                continue
            }
            guard minIdle == 0 || ctx.now - p.deliveryTime >= minIdle else { continue }
            if claimer == nil {
                g.consumers[consumerName] = consumer
                ctx.notify(.stream, "xgroup-createconsumer", ctx.args[1])
                StreamGroupEffects.consumerCreated(ctx, key: key, g, consumerName)
                claimer = consumer
            }
            claim(p, id, to: consumer, in: g, at: deliveryTime, justID: justID)
            consumer.activeTime = ctx.now
            if let retryCount { p.deliveryCount = retryCount }
            StreamGroupEffects.claimed(ctx, key: key, g, id, p)
            claimed.append((id, entry.fields))
        }
        if g.lastDelivered != positionBefore { StreamGroupEffects.position(ctx, key: key, g) }
        ctx.dirty += 1
        ctx.reply.arrayHeader(claimed.count)
        for item in claimed {
            if justID { ctx.reply.bulk(item.id.bytes) } else { writeItem(ctx.reply, item) }
        }
    }

    static func claim(_ p: PendingEntry, _ id: StreamID, to consumer: StreamConsumer, in g: ConsumerGroup, at time: Int64, justID: Bool) {
        if p.consumer != consumer.name {
            g.consumers[p.consumer]?.pending.remove(id)
            p.consumer = consumer.name
            consumer.pending.insert(id)
        }
        p.deliveryTime = time
        if !justID { p.deliveryCount += 1 }
    }

    static func xautoclaim(_ ctx: CommandContext) throws(CommandError) {
        let key = ctx.args[1], consumerName = ctx.args[3]
        // Redis's order: the arguments, then the key's type, then the group.
        guard let minIdleArg = Numbers.int(ctx.args[4]) else {
            throw CommandError("ERR Invalid min-idle-time argument for XAUTOCLAIM")
        }
        let minIdle = Int64(max(0, minIdleArg))
        let start = try StreamCommands.rangeBound(ctx.args[5], isStart: true)!
        var count = 100, justID = false
        var i = 6
        while i < ctx.args.count {
            if ctx.option(i, "justid") { justID = true; i += 1 }
            else if ctx.option(i, "count"), i + 1 < ctx.args.count {
                guard let n = Numbers.int(ctx.args[i + 1]), n >= 1, n <= Int.max / 10 else {
                    throw CommandError("ERR COUNT must be > 0")
                }
                count = n
                i += 2
            } else { throw .syntax }
        }
        guard let s = try ctx.stream(key), let g = s.groups[ctx.args[2]] else { throw noGroup(key, ctx.args[2]) }
        ctx.recordsOwnEffects()  // what it claimed (StreamGroupEffects), never its arguments
        // As XCLAIM: a consumer that does not exist is created by its first claim only.
        var claimer = g.consumers[consumerName]
        claimer?.seenTime = ctx.now
        var attempts = count * 10
        var claimed: [ReadItem] = []
        var deleted: [StreamID] = []
        var cursor = StreamID.zero
        let candidates = g.pendingIDs.filter { $0 >= start }
        var k = 0
        // COUNT bounds the reply: deleted entries it reports count as claimed ones do.
        while k < candidates.count && attempts > 0 && claimed.count + deleted.count < count {
            let id = candidates[k]
            k += 1
            attempts -= 1
            guard let p = g.pending[id] else { continue }
            guard let entry = s.entry(id) else {
                g.consumers[p.consumer]?.pending.remove(id)
                g.pending.removeValue(forKey: id)
                StreamGroupEffects.dropped(ctx, key: key, g, id)
                deleted.append(id)
                continue
            }
            guard minIdle == 0 || ctx.now - p.deliveryTime >= minIdle else { continue }
            let consumer = claimer ?? consumerCreatingIfMissing(ctx, g, consumerName, of: ctx.args[1])
            claimer = consumer
            claim(p, id, to: consumer, in: g, at: ctx.now, justID: justID)
            consumer.activeTime = ctx.now
            StreamGroupEffects.claimed(ctx, key: key, g, id, p)
            claimed.append((id, entry.fields))
        }
        if k < candidates.count { cursor = candidates[k] }
        ctx.dirty += 1
        ctx.reply.arrayHeader(3)
        ctx.reply.bulk(cursor.bytes)
        ctx.reply.arrayHeader(claimed.count)
        for item in claimed {
            if justID { ctx.reply.bulk(item.id.bytes) } else { writeItem(ctx.reply, item) }
        }
        ctx.reply.arrayHeader(deleted.count)
        for id in deleted { ctx.reply.bulk(id.bytes) }
    }
}
