import Keyspace
import RESP

/// Stream commands without consumer groups: XADD, XLEN, XRANGE, XREVRANGE, XDEL,
/// XTRIM, XSETID and XREAD (which blocks through `BlockedOperation.streamRead`).
enum StreamCommands {
    static let specs: [CommandSpec] = [
        CommandSpec("xadd", arity: -5, flags: [.write, .denyOOM, .fast], keys: KeySpec(1, 1, 1), handler: xadd),
        CommandSpec("xlen", arity: 2, flags: [.readonly, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            ctx.reply.integer(try ctx.stream(ctx.args[1])?.count ?? 0)
        },
        CommandSpec("xrange", arity: -4, flags: [.readonly], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            try xrange(ctx, reverse: false)
        },
        CommandSpec("xrevrange", arity: -4, flags: [.readonly], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            try xrange(ctx, reverse: true)
        },
        CommandSpec("xdel", arity: -3, flags: [.write, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            // The key first (missing: 0, wrong type: WRONGTYPE), then the IDs, as Redis.
            guard let s = try ctx.stream(ctx.args[1]) else { ctx.reply.integer(0); return }
            var ids: [StreamID] = []
            for arg in ctx.args[2...] { ids.append(try strictID(arg)) }
            let deleted = ids.reduce(0) { $0 + (s.delete($1) ? 1 : 0) }
            ctx.dirty += deleted
            ctx.reply.integer(deleted)
        },
        CommandSpec("xtrim", arity: -4, flags: [.write], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            var i = 2
            guard let trim = try TrimOptions.parse(ctx, at: &i) else { throw .syntax }
            guard i == ctx.args.count else { throw .syntax }
            try trim.validate()
            guard let s = try ctx.stream(ctx.args[1]) else { ctx.reply.integer(0); return }
            let removed = trim.apply(s)
            ctx.dirty += removed
            ctx.reply.integer(removed)
        },
        CommandSpec("xsetid", arity: -3, flags: [.write, .denyOOM, .fast], keys: KeySpec(1, 1, 1), handler: xsetid),
        CommandSpec("xread", arity: -4, flags: [.readonly, .blocking], keys: KeySpec(finder: streamsFinder), handler: xread),
    ]

    static let invalidID = CommandError("ERR Invalid stream ID specified as stream command argument")

    /// `ms-seq` or `ms` (seq 0), nothing else.
    static func strictID(_ b: Bytes) throws(CommandError) -> StreamID {
        guard let (ms, seq) = StreamID.parse(b, missingSeq: 0) else { throw invalidID }
        return StreamID(ms, seq!)
    }

    /// An interval bound of XRANGE/XPENDING: `-`, `+`, an ID, or `(ID` for exclusive.
    static func rangeBound(_ b: Bytes, isStart: Bool) throws(CommandError) -> StreamID? {
        if b == Bytes("-") { return .zero }
        if b == Bytes("+") { return .max }
        var text = b
        let exclusive = b.count > 1 && b.withUnsafeBytes { $0[0] } == UInt8(ascii: "(")
        if exclusive { text = Bytes(Array(b.withUnsafeBytes { Array($0) }.dropFirst())) }
        guard let (ms, seq) = StreamID.parse(text, missingSeq: isStart ? 0 : UInt64.max) else { throw invalidID }
        let id = StreamID(ms, seq!)
        guard exclusive else { return id }
        if isStart {
            guard let next = id.successor else { throw CommandError("ERR invalid start ID for the interval") }
            return next
        }
        guard let prev = id.predecessor else { throw CommandError("ERR invalid end ID for the interval") }
        return prev
    }

    static func xadd(_ ctx: CommandContext) throws(CommandError) {
        let key = ctx.args[1]
        var i = 2
        var noMakeStream = false
        var trim: TrimOptions? = nil
        while i < ctx.args.count {
            if ctx.option(i, "nomkstream") {
                noMakeStream = true
                i += 1
            } else if let t = try TrimOptions.parse(ctx, at: &i) {
                trim = t
            } else {
                break
            }
        }
        // The ID, then at least one field-value pair; Redis reads the ID first.
        guard i < ctx.args.count else { throw .wrongArity("xadd") }
        let idArg = ctx.args[i]
        var explicit: (ms: UInt64, seq: UInt64?)? = nil
        if idArg != Bytes("*") {
            guard let parsed = StreamID.parse(idArg, missingSeq: 0, allowAutoSeq: true) else { throw invalidID }
            explicit = parsed
        }
        try trim?.validate()
        let pairs = ctx.args.count - i - 1
        guard pairs > 0, pairs % 2 == 0 else { throw .wrongArity("xadd") }
        if let explicit, let seq = explicit.seq, explicit.ms == 0, seq == 0 {
            throw CommandError("ERR The ID specified in XADD must be greater than 0-0")
        }
        let existing = try ctx.stream(key)
        if existing == nil && noMakeStream { ctx.reply.null(); return }
        let s = existing ?? StreamValue()
        guard s.lastID != .max else {
            throw CommandError("ERR The stream has exhausted the last possible ID, unable to add more items")
        }
        let id: StreamID
        if let explicit, let seq = explicit.seq {
            id = StreamID(explicit.ms, seq)
            guard id > s.lastID else { throw CommandError("ERR The ID specified in XADD is equal or smaller than the target stream top item") }
        } else if let next = s.nextID(now: ctx.now, ms: explicit?.ms) {
            id = next
        } else if explicit != nil {
            throw CommandError("ERR The ID specified in XADD is equal or smaller than the target stream top item")
        } else {
            throw CommandError("ERR The stream has exhausted the last possible ID, unable to add more items")
        }
        s.append(id, Array(ctx.args[(i + 1)...]))
        if existing == nil { ctx.db(key).add(key, .stream(s)) } else { ctx.db(key).signalReady(key) }
        ctx.dirty += 1
        var effect = ctx.args
        effect[i] = id.bytes  // the ID chosen, not `*`
        ctx.propagate(effect)
        ctx.reply.bulk(id.bytes)
        if let trim { ctx.dirty += trim.apply(s) }
    }

    /// XSETID key last-id [ENTRIESADDED n] [MAXDELETEDID id]: the arguments are checked
    /// before the key, as Redis does. Like Redis 7.0, a last ID below the stream's
    /// current maximal deleted ID is accepted (7.2 refuses it).
    static func xsetid(_ ctx: CommandContext) throws(CommandError) {
        let id = try strictID(ctx.args[2])
        var entriesAdded: Int? = nil
        var maxDeletedID: StreamID? = nil
        var i = 3
        while i < ctx.args.count {
            guard i + 1 < ctx.args.count else { throw .syntax }
            if ctx.option(i, "entriesadded") {
                let n = try ctx.int(i + 1)
                guard n >= 0 else { throw CommandError("ERR entries_added must be positive") }
                entriesAdded = n
            } else if ctx.option(i, "maxdeletedid") {
                let deleted = try strictID(ctx.args[i + 1])
                guard deleted <= id else {
                    throw CommandError("ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id")
                }
                maxDeletedID = deleted
            } else {
                throw .syntax
            }
            i += 2
        }
        guard let s = try ctx.stream(ctx.args[1]) else { throw .noSuchKey }
        if let last = s.entries.last?.id {
            guard id >= last else { throw CommandError("ERR The ID specified in XSETID is smaller than the target stream top item") }
            if let entriesAdded, entriesAdded < s.count {
                throw CommandError("ERR The entries_added specified in XSETID is smaller than the target stream length")
            }
        }
        s.lastID = id
        if let entriesAdded { s.entriesAdded = entriesAdded }
        if let maxDeletedID, maxDeletedID != .zero { s.maxDeletedID = maxDeletedID }
        ctx.dirty += 1
        ctx.notify(.stream, "xsetid", ctx.args[1])
        ctx.reply.ok()
    }

    static func xrange(_ ctx: CommandContext, reverse: Bool) throws(CommandError) {
        let start = try rangeBound(ctx.args[reverse ? 3 : 2], isStart: true)!
        let end = try rangeBound(ctx.args[reverse ? 2 : 3], isStart: false)!
        var limit = Int.max
        var i = 4
        while i < ctx.args.count {
            guard ctx.option(i, "count"), i + 1 < ctx.args.count else { throw .syntax }
            limit = max(0, try ctx.int(i + 1))
            i += 2
        }
        guard let s = try ctx.stream(ctx.args[1]) else { ctx.reply.emptyArray(); return }
        // Redis 7.0 answers a COUNT below one on an existing stream with a null array.
        guard limit > 0 else { ctx.reply.nullArray(); return }
        writeEntries(ctx.reply, s.range(start, end, limit: limit, reverse: reverse))
    }

    // MARK: XREAD

    /// Key positions of XREAD/XREADGROUP: the first half of what follows STREAMS.
    static let streamsFinder: @Sendable ([Bytes]) -> [Int] = { args in
        guard let at = args.firstIndex(where: { $0.equalsIgnoringCase("streams") }) else { return [] }
        let n = (args.count - at - 1) / 2
        return n > 0 ? Array((at + 1)...(at + n)) : []
    }

    static func xread(_ ctx: CommandContext) throws(CommandError) {
        let req = try ReadRequest.parse(ctx, group: false)
        var afterIDs: [StreamID] = []
        for (key, idArg) in zip(req.keys, req.ids) {
            let s = try ctx.stream(key)
            if idArg == Bytes("$") {
                afterIDs.append(s?.lastID ?? .zero)
            } else if idArg == Bytes("+") {
                afterIDs.append(s?.entries.last?.id.predecessor ?? s?.lastID ?? .zero)
            } else if idArg == Bytes(">") {
                throw CommandError("ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.")
            } else {
                guard let (ms, seq) = StreamID.parse(idArg, missingSeq: 0) else { throw invalidID }
                afterIDs.append(StreamID(ms, seq!))
            }
        }
        var found: [(Bytes, [StreamEntry])] = []
        for (key, after) in zip(req.keys, afterIDs) {
            guard let s = try ctx.stream(key), let from = after.successor else { continue }
            let entries = s.range(from, .max, limit: req.count ?? Int.max)
            if !entries.isEmpty { found.append((key, entries)) }
        }
        if !found.isEmpty {
            writeStreams(ctx.reply, found)
            return
        }
        guard let deadline = req.deadline else { ctx.reply.nullArray(); return }
        var after: [Bytes: StreamID] = [:]
        for (key, id) in zip(req.keys, afterIDs) where after[key] == nil { after[key] = id }
        Blocking.blockOrGiveUp(ctx, keys: req.keys, deadline: deadline, .streamRead(after: after, count: req.count))
    }

    static func hasEntries(_ ctx: CommandContext, key: Bytes, after: StreamID) -> Bool {
        guard case .stream(let s)? = ctx.lookup(key)?.value else { return false }
        return s.lastID > after && (s.entries.last.map { $0.id > after } ?? false)
    }

    static func serveRead(_ ctx: CommandContext, key: Bytes, after: StreamID, count: Int?) {
        guard case .stream(let s)? = ctx.lookup(key)?.value, let from = after.successor else { return }
        writeStreams(ctx.reply, [(key, s.range(from, .max, limit: count ?? Int.max))])
    }

    // MARK: replies

    static func writeEntry(_ w: ReplyWriter, _ e: StreamEntry) {
        w.arrayHeader(2)
        w.bulk(e.id.bytes)
        w.arrayHeader(e.fields.count)
        for f in e.fields { w.bulk(f) }
    }

    static func writeEntries(_ w: ReplyWriter, _ entries: [StreamEntry]) {
        w.arrayHeader(entries.count)
        for e in entries { writeEntry(w, e) }
    }

    /// XREAD/XREADGROUP's reply: `[[key, entries]...]`, a map of key to entries in RESP3.
    static func writeStreams(_ w: ReplyWriter, _ streams: [(Bytes, [StreamEntry])]) {
        if w.isRESP3 { w.mapHeader(streams.count) } else { w.arrayHeader(streams.count) }
        for (key, entries) in streams {
            if !w.isRESP3 { w.arrayHeader(2) }
            w.bulk(key)
            writeEntries(w, entries)
        }
    }
}

/// MAXLEN|MINID [=|~] threshold [LIMIT count], shared by XADD and XTRIM.
struct TrimOptions {
    var maxLength: Int? = nil
    var minID: StreamID? = nil
    var approximate = false
    var limit: Int? = nil

    /// Parses the options at `i` and moves past them; nil when `args[i]` starts none.
    static func parse(_ ctx: CommandContext, at i: inout Int) throws(CommandError) -> TrimOptions? {
        let isMaxLen = ctx.option(i, "maxlen")
        guard isMaxLen || ctx.option(i, "minid") else { return nil }
        var t = TrimOptions()
        i += 1
        if ctx.option(i, "~") { t.approximate = true; i += 1 } else if ctx.option(i, "=") { i += 1 }
        guard i < ctx.args.count else { throw .syntax }
        if isMaxLen {
            let n = try ctx.int(i)
            guard n >= 0 else { throw CommandError("ERR The MAXLEN argument must be >= 0.") }
            t.maxLength = n
        } else {
            t.minID = try StreamCommands.strictID(ctx.args[i])
        }
        i += 1
        if ctx.option(i, "limit") {
            guard i + 1 < ctx.args.count else { throw .syntax }
            let n = try ctx.int(i + 1)
            guard n >= 0 else { throw CommandError("ERR The LIMIT argument must be >= 0.") }
            t.limit = n
            i += 2
        }
        if ctx.option(i, "maxlen") || ctx.option(i, "minid") {
            throw CommandError("ERR syntax error, MAXLEN and MINID options at the same time are not compatible")
        }
        return t
    }

    /// LIMIT needs `~`; Redis checks this once all arguments (and XADD's ID) are read.
    func validate() throws(CommandError) {
        if limit != nil && !approximate {
            throw CommandError("ERR syntax error, LIMIT cannot be used without the special ~ option")
        }
    }

    /// Trims `s`; returns the entries removed.
    func apply(_ s: StreamValue) -> Int {
        // `~` without LIMIT removes at most 100 nodes' worth, as Redis does.
        let cap = approximate ? (limit ?? StreamNodeLimits.defaultTrimLimit) : 0
        return s.trim(maxLength: maxLength, minID: minID, approximate: approximate, limit: cap)
    }
}

/// The shared arguments of XREAD and XREADGROUP.
struct ReadRequest {
    var count: Int? = nil
    /// Absolute deadline when BLOCK was given (0: forever), nil when it was not.
    var deadline: Int64? = nil
    var group: (name: Bytes, consumer: Bytes)? = nil
    var noAck = false
    var keys: [Bytes] = []
    var ids: [Bytes] = []

    static func parse(_ ctx: CommandContext, group: Bool) throws(CommandError) -> ReadRequest {
        var r = ReadRequest()
        var i = 1
        while i < ctx.args.count {
            if ctx.option(i, "count"), i + 1 < ctx.args.count {
                let n = try ctx.int(i + 1)
                r.count = n > 0 ? n : nil
                i += 2
            } else if ctx.option(i, "block"), i + 1 < ctx.args.count {
                r.deadline = try Blocking.deadline(ctx.args[i + 1], now: ctx.now, inSeconds: false)
                i += 2
            } else if group && ctx.option(i, "group"), i + 2 < ctx.args.count {
                r.group = (ctx.args[i + 1], ctx.args[i + 2])
                i += 3
            } else if group && ctx.option(i, "noack") {
                r.noAck = true
                i += 1
            } else if ctx.option(i, "streams") {
                let rest = ctx.args.count - i - 1
                let name = group ? "xreadgroup" : "xread"
                guard rest > 0, rest % 2 == 0 else {
                    throw CommandError("ERR Unbalanced '\(name)' list of streams: for each stream key an ID or '\(group ? ">" : "$")' must be specified.")
                }
                r.keys = Array(ctx.args[(i + 1)...(i + rest / 2)])
                r.ids = Array(ctx.args[(i + 1 + rest / 2)...])
                break
            } else {
                throw .syntax
            }
        }
        guard !r.keys.isEmpty else { throw .syntax }
        if group && r.group == nil { throw CommandError("ERR Missing GROUP option for XREADGROUP") }
        return r
    }
}
