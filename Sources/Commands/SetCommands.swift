import Keyspace
import RESP

/// Set commands, including the multi-key algebra (SINTER, SUNIONSTORE...).
enum SetCommands {
    static let specs: [CommandSpec] = [
        CommandSpec("sadd", arity: -3, flags: [.write, .denyOOM, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            let s = try ctx.setOrCreate(ctx.args[1])
            var added = 0
            for m in ctx.args.dropFirst(2) where s.members.insert(m).inserted { added += 1 }
            ctx.dirty += added
            ctx.reply.integer(added)
        },
        CommandSpec("srem", arity: -3, flags: [.write, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            let key = ctx.args[1]
            guard let s = try ctx.set(key) else { ctx.reply.integer(0); return }
            var removed = 0
            for m in ctx.args.dropFirst(2) where s.members.remove(m) != nil { removed += 1 }
            ctx.deleteIfEmpty(key, s.members.isEmpty)
            ctx.dirty += removed
            ctx.reply.integer(removed)
        },
        CommandSpec("smembers", arity: 2, flags: [.readonly, .sharedRead], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            let s = try ctx.set(ctx.args[1])
            writeSet(ctx, s?.members ?? [])
        },
        CommandSpec("sismember", arity: 3, flags: [.readonly, .fast, .sharedRead], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            ctx.reply.integer(try ctx.set(ctx.args[1])?.members.contains(ctx.args[2]) == true ? 1 : 0)
        },
        CommandSpec("smismember", arity: -3, flags: [.readonly, .fast, .sharedRead], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            let s = try ctx.set(ctx.args[1])
            ctx.reply.arrayHeader(ctx.args.count - 2)
            for m in ctx.args.dropFirst(2) { ctx.reply.integer(s?.members.contains(m) == true ? 1 : 0) }
        },
        CommandSpec("scard", arity: 2, flags: [.readonly, .fast, .sharedRead], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            ctx.reply.integer(try ctx.set(ctx.args[1])?.members.count ?? 0)
        },
        CommandSpec("spop", arity: -2, flags: [.write, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            let key = ctx.args[1]
            if ctx.args.count > 3 { throw .syntax }
            if ctx.args.count == 3 {
                guard let n = Numbers.int(ctx.args[2]), n >= 0 else { throw CommandError("ERR value is out of range, must be positive") }
                guard let s = try ctx.set(key) else { writeSet(ctx, []); return }
                var popped: [Bytes] = []
                for _ in 0..<min(n, s.members.count) { popped.append(s.members.remove(s.members.randomElement()!)!) }
                ctx.deleteIfEmpty(key, s.members.isEmpty)
                ctx.dirty += popped.count
                if !popped.isEmpty { ctx.propagate([Bytes("SREM"), key] + popped) }  // what was taken, not a new draw
                writeSet(ctx, popped)
                return
            }
            guard let s = try ctx.set(key), let m = s.members.randomElement() else { ctx.reply.null(); return }
            s.members.remove(m)
            ctx.deleteIfEmpty(key, s.members.isEmpty)
            ctx.dirty += 1
            ctx.propagate([Bytes("SREM"), key, m])
            ctx.reply.bulk(m)
        },
        CommandSpec("srandmember", arity: -2, flags: [.readonly], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            if ctx.args.count > 3 { throw .syntax }
            let n = ctx.args.count == 3 ? try ctx.int(2) : nil  // the count before the key, as Redis
            if let n, n == Int.min { throw CommandError("ERR value is out of range") }
            let s = try ctx.set(ctx.args[1])
            if let n {
                ctx.reply.bulkArray(randomPick(Array(s?.members ?? []), count: n))
                return
            }
            if let m = s?.members.randomElement() { ctx.reply.bulk(m) } else { ctx.reply.null() }
        },
        CommandSpec("smove", arity: 4, flags: [.write, .fast], keys: KeySpec(1, 2, 1)) { ctx throws(CommandError) in
            let src = ctx.args[1], dst = ctx.args[2], m = ctx.args[3]
            // A missing source answers 0 before the destination's type is checked, as in Redis.
            guard let from = try ctx.set(src) else { ctx.reply.integer(0); return }
            let to = try ctx.set(dst)
            guard from.members.contains(m) else { ctx.reply.integer(0); return }
            if src == dst { ctx.reply.integer(1); return }
            from.members.remove(m)
            ctx.notify(.set, "srem", src)
            ctx.deleteIfEmpty(src, from.members.isEmpty)
            let target: SetValue
            if let to { target = to } else { target = try ctx.setOrCreate(dst) }
            // A destination that already has the member is left as it was, as in Redis:
            // no event, and its WATCHers are not touched.
            if target.members.insert(m).inserted {
                ctx.notify(.set, "sadd", dst)
            } else {
                ctx.unchangedKeys.append(dst)
            }
            ctx.dirty += 1
            ctx.reply.integer(1)
        },
        CommandSpec("sinter", arity: -2, flags: [.readonly], keys: KeySpec(1, -1, 1)) { ctx throws(CommandError) in
            writeSet(ctx, try algebra(ctx, Array(ctx.args.dropFirst()), .inter))
        },
        CommandSpec("sunion", arity: -2, flags: [.readonly], keys: KeySpec(1, -1, 1)) { ctx throws(CommandError) in
            writeSet(ctx, try algebra(ctx, Array(ctx.args.dropFirst()), .union))
        },
        CommandSpec("sdiff", arity: -2, flags: [.readonly], keys: KeySpec(1, -1, 1)) { ctx throws(CommandError) in
            writeSet(ctx, try algebra(ctx, Array(ctx.args.dropFirst()), .diff))
        },
        CommandSpec("sinterstore", arity: -3, flags: [.write, .denyOOM], keys: KeySpec(1, -1, 1)) { ctx throws(CommandError) in
            try store(ctx, .inter, event: "sinterstore")
        },
        CommandSpec("sunionstore", arity: -3, flags: [.write, .denyOOM], keys: KeySpec(1, -1, 1)) { ctx throws(CommandError) in
            try store(ctx, .union, event: "sunionstore")
        },
        CommandSpec("sdiffstore", arity: -3, flags: [.write, .denyOOM], keys: KeySpec(1, -1, 1)) { ctx throws(CommandError) in
            try store(ctx, .diff, event: "sdiffstore")
        },
        CommandSpec("sintercard", arity: -3, flags: [.readonly], keys: KeySpec(finder: numkeysFinder(at: 1))) { ctx throws(CommandError) in
            let (keys, next) = try numkeys(ctx, at: 1)
            var limit = 0
            if next < ctx.args.count {
                guard ctx.option(next, "limit"), next + 2 == ctx.args.count else { throw .syntax }
                guard let l = Numbers.int(ctx.args[next + 1]), l >= 0 else { throw CommandError("ERR LIMIT can't be negative") }
                limit = l
            }
            let n = try algebra(ctx, keys, .inter).count
            ctx.reply.integer(limit > 0 ? min(limit, n) : n)
        },
        CommandSpec("sscan", arity: -3, flags: [.readonly], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            try collectionScan(ctx) { () throws(CommandError) -> [(Bytes, Bytes?)]? in
                try ctx.set(ctx.args[1]).map { $0.members.map { ($0, nil) } }
            }
        },
    ]

    enum Operation { case inter, union, diff }

    static func algebra(_ ctx: CommandContext, _ keys: [Bytes], _ op: Operation) throws(CommandError) -> Set<Bytes> {
        var sets: [Set<Bytes>?] = []
        for k in keys { sets.append(try ctx.set(k)?.members) }
        switch op {
        case .union:
            return sets.reduce(into: Set<Bytes>()) { $0.formUnion($1 ?? []) }
        case .diff:
            guard var result = sets[0] else { return [] }
            for s in sets.dropFirst() { if let s { result.subtract(s) } }
            return result
        case .inter:
            if sets.contains(where: { $0 == nil }) { return [] }
            let ordered = sets.map { $0! }.sorted { $0.count < $1.count }
            var result = ordered[0]
            for s in ordered.dropFirst() { result.formIntersection(s) }
            return result
        }
    }

    static func store(_ ctx: CommandContext, _ op: Operation, event: String) throws(CommandError) {
        let result = try algebra(ctx, Array(ctx.args.dropFirst(2)), op)
        storeResult(ctx, ctx.args[1], result.isEmpty ? nil : .set(SetValue(result)), .set, event)
        ctx.reply.integer(result.count)
    }

    static func writeSet<C: Collection>(_ ctx: CommandContext, _ members: C) where C.Element == Bytes {
        ctx.reply.setHeader(members.count)
        for m in members { ctx.reply.bulk(m) }
    }
}
