import Keyspace
import RESP

/// Hash commands.
enum HashCommands {
    static let specs: [CommandSpec] = [
        CommandSpec("hset", arity: -4, flags: [.write, .denyOOM, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            ctx.reply.integer(try setFields(ctx, name: "hset"))
        },
        CommandSpec("hmset", arity: -4, flags: [.write, .denyOOM, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            _ = try setFields(ctx, name: "hmset")
            ctx.reply.ok()
        },
        CommandSpec("hsetnx", arity: 4, flags: [.write, .denyOOM, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            let added = try ctx.modifyHash(ctx.args[1]) { h in
                if h[ctx.args[2]] != nil { return false }
                h[ctx.args[2]] = ctx.args[3]
                return true
            }
            if added { ctx.dirty += 1 }
            ctx.reply.integer(added ? 1 : 0)
        },
        CommandSpec("hget", arity: 3, flags: [.readonly, .fast, .sharedRead], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            if let v = try ctx.hash(ctx.args[1])?[ctx.args[2]] { ctx.reply.bulk(v) } else { ctx.reply.null() }
        },
        CommandSpec("hmget", arity: -3, flags: [.readonly, .fast, .sharedRead], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            let h = try ctx.hash(ctx.args[1])
            ctx.reply.arrayHeader(ctx.args.count - 2)
            for f in ctx.args.dropFirst(2) {
                if let v = h?[f] { ctx.reply.bulk(v) } else { ctx.reply.null() }
            }
        },
        CommandSpec("hgetall", arity: 2, flags: [.readonly, .sharedRead], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            let h = try ctx.hash(ctx.args[1])
            ctx.reply.mapHeader(h?.count ?? 0)
            for (k, v) in h ?? [:] { ctx.reply.bulk(k); ctx.reply.bulk(v) }
        },
        CommandSpec("hdel", arity: -3, flags: [.write, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            let key = ctx.args[1]
            guard try ctx.hash(key) != nil else { ctx.reply.integer(0); return }
            let (n, empty) = try ctx.modifyHash(key) { h in
                var n = 0
                for f in ctx.args.dropFirst(2) where h.removeValue(forKey: f) != nil { n += 1 }
                return (n, h.isEmpty)
            }
            ctx.deleteIfEmpty(key, empty)
            ctx.dirty += n
            ctx.reply.integer(n)
        },
        CommandSpec("hexists", arity: 3, flags: [.readonly, .fast, .sharedRead], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            ctx.reply.integer(try ctx.hash(ctx.args[1])?[ctx.args[2]] != nil ? 1 : 0)
        },
        CommandSpec("hlen", arity: 2, flags: [.readonly, .fast, .sharedRead], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            ctx.reply.integer(try ctx.hash(ctx.args[1])?.count ?? 0)
        },
        CommandSpec("hstrlen", arity: 3, flags: [.readonly, .fast, .sharedRead], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            ctx.reply.integer(try ctx.hash(ctx.args[1])?[ctx.args[2]]?.count ?? 0)
        },
        CommandSpec("hincrby", arity: 4, flags: [.write, .denyOOM, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            let by = try ctx.int(3)
            let r = try ctx.modifyHash(ctx.args[1]) { (h) throws(CommandError) -> Int in
                var current = 0
                if let v = h[ctx.args[2]] {
                    guard let n = Numbers.int(v) else { throw CommandError("ERR hash value is not an integer") }
                    current = n
                }
                let (r, o) = current.addingReportingOverflow(by)
                guard !o else { throw .overflow }
                h[ctx.args[2]] = Bytes(r)
                return r
            }
            ctx.dirty += 1
            ctx.reply.integer(r)
        },
        CommandSpec("hincrbyfloat", arity: 4, flags: [.write, .denyOOM, .fast], keys: KeySpec(1, 1, 1), handler: FloatIncrement.hincrByFloat),
        CommandSpec("hkeys", arity: 2, flags: [.readonly, .sharedRead], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            ctx.reply.bulkArray(try ctx.hash(ctx.args[1])?.keys ?? [])
        },
        CommandSpec("hvals", arity: 2, flags: [.readonly, .sharedRead], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            ctx.reply.bulkArray(try ctx.hash(ctx.args[1])?.values ?? [])
        },
        CommandSpec("hrandfield", arity: -2, flags: [.readonly], keys: KeySpec(1, 1, 1), handler: hrandfield),
        CommandSpec("hscan", arity: -3, flags: [.readonly], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            try collectionScan(ctx) { () throws(CommandError) -> [(Bytes, Bytes?)]? in
                try ctx.hash(ctx.args[1]).map { $0.map { ($0.key, $0.value) } }
            }
        },
    ]

    static func setFields(_ ctx: CommandContext, name: String) throws(CommandError) -> Int {
        guard ctx.args.count % 2 == 0 else { throw .wrongArity(name) }
        let added = try ctx.modifyHash(ctx.args[1]) { h in
            var added = 0
            for i in stride(from: 2, to: ctx.args.count, by: 2) where h.updateValue(ctx.args[i + 1], forKey: ctx.args[i]) == nil {
                added += 1
            }
            return added
        }
        ctx.dirty += (ctx.args.count - 2) / 2
        return added
    }

    static func hrandfield(_ ctx: CommandContext) throws(CommandError) {
        let (count, withValues) = try randomCountArguments(ctx, flag: "withvalues")
        let h = try ctx.hash(ctx.args[1])
        guard let count else {
            if let f = h?.randomElement() { ctx.reply.bulk(f.key) } else { ctx.reply.null() }
            return
        }
        guard let h else { ctx.reply.emptyArray(); return }
        let picked = randomPick(Array(h), count: count)
        if withValues && ctx.reply.isRESP3 {
            ctx.reply.arrayHeader(picked.count)
            for p in picked { ctx.reply.arrayHeader(2); ctx.reply.bulk(p.key); ctx.reply.bulk(p.value) }
        } else {
            ctx.reply.arrayHeader(withValues ? picked.count * 2 : picked.count)
            for p in picked { ctx.reply.bulk(p.key); if withValues { ctx.reply.bulk(p.value) } }
        }
    }
}
