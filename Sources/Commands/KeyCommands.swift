import Keyspace
import RESP

/// Generic key commands: existence, deletion, expiry, renaming, iteration.
enum KeyCommands {
    static let specs: [CommandSpec] = [
        CommandSpec("del", arity: -2, flags: [.write], keys: KeySpec(1, -1, 1), handler: del),
        CommandSpec("unlink", arity: -2, flags: [.write, .fast], keys: KeySpec(1, -1, 1)) { ctx throws(CommandError) in
            delete(ctx, lazily: true)
        },
        CommandSpec("exists", arity: -2, flags: [.readonly, .fast, .sharedRead], keys: KeySpec(1, -1, 1)) { ctx throws(CommandError) in
            // No access, unlike TOUCH (Redis looks without touching).
            ctx.reply.integer((1..<ctx.args.count).reduce(0) { $0 + (ctx.peek(argument: $1) != nil ? 1 : 0) })
        },
        CommandSpec("touch", arity: -2, flags: [.readonly, .fast], keys: KeySpec(1, -1, 1)) { ctx throws(CommandError) in
            ctx.reply.integer((1..<ctx.args.count).reduce(0) { $0 + (ctx.lookup(argument: $1) != nil ? 1 : 0) })
        },
        CommandSpec("type", arity: 2, flags: [.readonly, .fast, .sharedRead], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            if let e = ctx.peek(ctx.args[1]) { ctx.reply.simple(e.value.typeName) } else { ctx.reply.simple("none") }
        },
        CommandSpec("expire", arity: -3, flags: [.write, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            try expire(ctx, unitMs: 1000, absolute: false, name: "expire")
        },
        CommandSpec("pexpire", arity: -3, flags: [.write, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            try expire(ctx, unitMs: 1, absolute: false, name: "pexpire")
        },
        CommandSpec("expireat", arity: -3, flags: [.write, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            try expire(ctx, unitMs: 1000, absolute: true, name: "expireat")
        },
        CommandSpec("pexpireat", arity: -3, flags: [.write, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            try expire(ctx, unitMs: 1, absolute: true, name: "pexpireat")
        },
        CommandSpec("ttl", arity: 2, flags: [.readonly, .fast, .sharedRead], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            ttl(ctx) { ($0 + 500) / 1000 }
        },
        CommandSpec("pttl", arity: 2, flags: [.readonly, .fast, .sharedRead], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            ttl(ctx) { $0 }
        },
        CommandSpec("expiretime", arity: 2, flags: [.readonly, .fast, .sharedRead], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            expireTime(ctx) { $0 / 1000 }
        },
        CommandSpec("pexpiretime", arity: 2, flags: [.readonly, .fast, .sharedRead], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            expireTime(ctx) { $0 }
        },
        CommandSpec("persist", arity: 2, flags: [.write, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            guard let e = ctx.lookup(ctx.args[1]), e.expireAt != 0 else { ctx.reply.integer(0); return }
            ctx.db(ctx.args[1]).persist(e)
            ctx.dirty += 1
            ctx.reply.integer(1)
        },
        CommandSpec("rename", arity: 3, flags: [.write], keys: KeySpec(1, 2, 1)) { ctx throws(CommandError) in
            try rename(ctx, onlyIfMissing: false)
        },
        CommandSpec("renamenx", arity: 3, flags: [.write, .fast], keys: KeySpec(1, 2, 1)) { ctx throws(CommandError) in
            try rename(ctx, onlyIfMissing: true)
        },
        CommandSpec("copy", arity: -3, flags: [.write, .denyOOM], keys: KeySpec(1, 2, 1), handler: copy),
        CommandSpec("move", arity: 3, flags: [.write, .fast], keys: KeySpec(1, 1, 1), handler: move),
        CommandSpec("keys", arity: 2, flags: [.readonly, .allShards]) { ctx throws(CommandError) in
            var out: [Bytes] = []
            let pattern = ctx.args[1]
            let all = pattern == Bytes("*")
            for db in ctx.allDatabases {
                db.table.forEach { e in
                    if (e.expireAt == 0 || e.expireAt > ctx.now) && (all || Glob.matches(pattern, e.key)) { out.append(e.key) }
                }
            }
            ctx.reply.bulkArray(out)
        },
        CommandSpec("scan", arity: -2, flags: [.readonly, .allShards], handler: scan),
        CommandSpec("randomkey", arity: 1, flags: [.readonly, .allShards]) { ctx throws(CommandError) in
            let dbs = ctx.allDatabases.filter { $0.count > 0 }
            for _ in 0..<100 {
                guard let db = dbs.randomElement(), let e = db.table.randomEntry() else { break }
                if e.expireAt == 0 || e.expireAt > ctx.now { ctx.reply.bulk(e.key); return }
            }
            ctx.reply.null()
        },
        CommandSpec("dbsize", arity: 1, flags: [.readonly, .fast, .allShards]) { ctx throws(CommandError) in
            ctx.reply.integer(ctx.allDatabases.reduce(0) { $0 + $1.count })
        },
        CommandSpec("flushdb", arity: -1, flags: [.write, .allShards]) { ctx throws(CommandError) in
            let lazily = try flushIsAsync(ctx)
            for db in ctx.allDatabases { ctx.dirty += db.count; db.removeAll(lazily: lazily) }
            ctx.reply.ok()
        },
        CommandSpec("flushall", arity: -1, flags: [.write, .allShards]) { ctx throws(CommandError) in
            let lazily = try flushIsAsync(ctx)
            for store in ctx.stores { for db in store.databases { ctx.dirty += db.count; db.removeAll(lazily: lazily) } }
            ctx.dirty += 1
            ctx.reply.ok()
        },
        CommandSpec("swapdb", arity: 3, flags: [.write, .fast, .allShards]) { ctx throws(CommandError) in
            guard let a = Numbers.int(ctx.args[1]), let b = Numbers.int(ctx.args[2]) else {
                throw CommandError("ERR invalid first DB index")
            }
            guard a >= 0, a < ctx.databaseCount, b >= 0, b < ctx.databaseCount else { throw .dbIndexOutOfRange }
            for store in ctx.stores where a != b {
                store.databases.swapAt(a, b)
                store.databases[a].tradeNumbers(with: store.databases[b])
            }
            ShardStore.layoutGeneration.add(1, ordering: .relaxed)
            ctx.dirty += 1
            ctx.reply.ok()
        },
    ]

    /// FLUSHALL/FLUSHDB [ASYNC|SYNC]: whether to free on the lazy-free thread (without an
    /// option, as lazyfree-lazy-user-flush says).
    static func flushIsAsync(_ ctx: CommandContext) throws(CommandError) -> Bool {
        if ctx.args.count > 2 { throw .syntax }
        guard ctx.args.count == 2 else { return LazyFree.onUserFlush.load(ordering: .relaxed) }
        if ctx.option(1, "async") { return true }
        if ctx.option(1, "sync") { return false }
        throw .syntax
    }

    static func del(_ ctx: CommandContext) throws(CommandError) {
        delete(ctx, lazily: LazyFree.onUserDelete.load(ordering: .relaxed))
    }

    /// DEL and UNLINK: UNLINK frees large values on the lazy-free thread, DEL when
    /// lazyfree-lazy-user-del is on.
    static func delete(_ ctx: CommandContext, lazily: Bool) {
        var n = 0
        for i in 1..<ctx.args.count where ctx.delete(argument: i, lazily: lazily) {
            n += 1
            ctx.notify(.generic, "del", ctx.args[i])
        }
        ctx.dirty += n
        ctx.reply.integer(n)
    }

    static func expire(_ ctx: CommandContext, unitMs: Int64, absolute: Bool, name: String) throws(CommandError) {
        let key = ctx.args[1]
        var nx = false, xx = false, gt = false, lt = false
        for a in ctx.args.dropFirst(3) {
            if a.equalsIgnoringCase("nx") { nx = true }
            else if a.equalsIgnoringCase("xx") { xx = true }
            else if a.equalsIgnoringCase("gt") { gt = true }
            else if a.equalsIgnoringCase("lt") { lt = true }
            else { throw CommandError("ERR Unsupported option \(a.string)") }
        }
        if nx && (xx || gt || lt) { throw CommandError("ERR NX and XX, GT or LT options at the same time are not compatible") }
        if gt && lt { throw CommandError("ERR GT and LT options at the same time are not compatible") }
        let v = try ctx.int(2)  // after the options, as Redis checks them
        let invalid = CommandError("ERR invalid expire time in '\(name)' command")
        let (scaled, o1) = Int64(v).multipliedReportingOverflow(by: unitMs)
        guard !o1 else { throw invalid }
        let (at, o2) = absolute ? (scaled, false) : scaled.addingReportingOverflow(ctx.now)
        guard !o2 else { throw invalid }
        guard let e = ctx.lookup(key) else { ctx.reply.integer(0); return }
        let current = e.expireAt  // 0: no TTL, which GT/LT treat as infinite
        if nx && current != 0 { ctx.reply.integer(0); return }
        if xx && current == 0 { ctx.reply.integer(0); return }
        if gt && (current == 0 || at <= current) { ctx.reply.integer(0); return }
        if lt && current != 0 && at >= current { ctx.reply.integer(0); return }
        let db = ctx.db(key)
        if at <= ctx.now { db.removeEntry(e) } else { _ = db.setExpire(e, at: at) }
        ctx.dirty += 1
        ctx.reply.integer(1)
    }

    static func ttl(_ ctx: CommandContext, _ scale: (Int64) -> Int64) {
        guard let e = ctx.peek(ctx.args[1]) else { ctx.reply.integer(-2); return }
        guard e.expireAt != 0 else { ctx.reply.integer(-1); return }
        ctx.reply.integer(Int(scale(max(0, e.expireAt - ctx.now))))
    }

    static func expireTime(_ ctx: CommandContext, _ scale: (Int64) -> Int64) {
        guard let e = ctx.peek(ctx.args[1]) else { ctx.reply.integer(-2); return }
        guard e.expireAt != 0 else { ctx.reply.integer(-1); return }
        ctx.reply.integer(Int(scale(e.expireAt)))
    }

    static func rename(_ ctx: CommandContext, onlyIfMissing: Bool) throws(CommandError) {
        let src = ctx.args[1], dst = ctx.args[2]
        guard let e = ctx.lookup(src) else { throw .noSuchKey }
        if src == dst {
            if onlyIfMissing { ctx.reply.integer(0) } else { ctx.reply.ok() }
            return
        }
        if onlyIfMissing && ctx.lookup(dst) != nil { ctx.reply.integer(0); return }
        let value = e.value, ttl = e.expireAt
        ctx.db(src).removeEntry(e)
        let dstDB = ctx.db(dst)
        dstDB.overwrite(dstDB.lookup(dst, now: ctx.now), dst, value, expireAt: ttl)
        ctx.notify(.generic, "rename_from", src)
        ctx.notify(.generic, "rename_to", dst)
        ctx.dirty += 1
        if onlyIfMissing { ctx.reply.integer(1) } else { ctx.reply.ok() }
    }

    static func copy(_ ctx: CommandContext) throws(CommandError) {
        let src = ctx.args[1], dst = ctx.args[2]
        var targetDB = ctx.dbIndex
        var replace = false
        var i = 3
        while i < ctx.args.count {
            if ctx.option(i, "replace") { replace = true }
            else if ctx.option(i, "db") && i + 1 < ctx.args.count {
                i += 1
                guard let n = Numbers.int(ctx.args[i]) else { throw .notInteger }
                guard n >= 0 && n < ctx.databaseCount else { throw .dbIndexOutOfRange }
                targetDB = n
            } else { throw .syntax }
            i += 1
        }
        if src == dst && targetDB == ctx.dbIndex { throw .sameObject }
        guard let e = ctx.lookup(src) else { ctx.reply.integer(0); return }
        let db = ctx.db(dst, index: targetDB)
        if db.lookup(dst, now: ctx.now) != nil {
            guard replace else { ctx.reply.integer(0); return }
        }
        // Redis's answer for a module type without a copy callback (Berth has none yet).
        guard let copy = e.value.deepCopy() else { throw CommandError("ERR not supported for this module type") }
        db.overwrite(db.lookup(dst, now: ctx.now), dst, copy, expireAt: e.expireAt)
        ctx.dirty += 1
        ctx.reply.integer(1)
    }

    static func move(_ ctx: CommandContext) throws(CommandError) {
        let key = ctx.args[1]
        guard let target = Numbers.int(ctx.args[2]) else { throw .notInteger }
        guard target >= 0 && target < ctx.databaseCount else { throw .dbIndexOutOfRange }
        guard target != ctx.dbIndex else { throw .sameObject }
        guard let e = ctx.lookup(key) else { ctx.reply.integer(0); return }
        let dst = ctx.db(key, index: target)
        if dst.lookup(key, now: ctx.now) != nil { ctx.reply.integer(0); return }
        let moved = dst.add(key, e.value)
        if e.expireAt != 0 { _ = dst.setExpire(moved, at: e.expireAt) }
        ctx.db(key).removeEntry(e)
        ctx.dirty += 1
        ctx.reply.integer(1)
    }

    /// SCAN's cursor is `tableCursor * shards + shard`: the low part says which shard's
    /// table the scan is in, the high part is that table's reverse-binary cursor.
    static func scan(_ ctx: CommandContext) throws(CommandError) {
        guard let cursor = UInt64(ctx.args[1].string) else { throw CommandError("ERR invalid cursor") }
        let opts = try ScanOptions.parse(ctx, from: 2, allowType: true)
        let shards = UInt64(ctx.stores.count)
        var shard = Int(cursor % shards)
        var tableCursor = cursor / shards
        var out: [Bytes] = []
        var visited = 0
        while visited < opts.count {
            let db = ctx.stores[shard].databases[ctx.dbIndex]
            tableCursor = db.table.scan(cursor: tableCursor) { e in
                guard e.expireAt == 0 || e.expireAt > ctx.now else { return }
                if let p = opts.pattern, !Glob.matches(p, e.key) { return }
                if let t = opts.type, e.value.typeName.description != t.description { return }
                out.append(e.key)
            }
            visited += 1
            if tableCursor == 0 {
                shard += 1
                if shard == ctx.stores.count { shard = -1; break }
            }
        }
        let next: UInt64 = shard < 0 ? 0 : tableCursor * shards + UInt64(shard)
        ctx.reply.arrayHeader(2)
        ctx.reply.bulk(String(next))
        ctx.reply.bulkArray(out)
    }
}
