import Keyspace
import RESP

/// Sorted set commands. Ranges descend the score tree once, then walk its leaves: O(log n + m).
enum SortedSetCommands {
    static let specs: [CommandSpec] = [
        CommandSpec("zadd", arity: -4, flags: [.write, .denyOOM, .fast], keys: KeySpec(1, 1, 1), handler: zadd),
        CommandSpec("zincrby", arity: 4, flags: [.write, .denyOOM, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            let by = try ctx.double(2)
            let r = try ctx.modifySortedSet(ctx.args[1]) { (z) throws(CommandError) -> Double in
                let r = z.score(ctx.args[3]).map { $0 + by } ?? by  // a new member takes the increment itself, -0 included
                guard !r.isNaN else { throw CommandError("ERR resulting score is not a number (NaN)") }
                z.insert(ctx.args[3], r)
                return r
            }
            ctx.dirty += 1
            ctx.reply.double(r)
        },
        CommandSpec("zrem", arity: -3, flags: [.write, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            let key = ctx.args[1]
            guard try ctx.zset(key) != nil else { ctx.reply.integer(0); return }
            let (n, empty) = try ctx.modifySortedSet(key) { z in
                var n = 0
                for m in ctx.args.dropFirst(2) where z.remove(m) { n += 1 }
                return (n, z.count == 0)
            }
            ctx.deleteIfEmpty(key, empty)
            ctx.dirty += n
            ctx.reply.integer(n)
        },
        CommandSpec("zscore", arity: 3, flags: [.readonly, .fast, .sharedRead], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            if let s = try ctx.zset(ctx.args[1])?.score(ctx.args[2]) { ctx.reply.double(s) } else { ctx.reply.null() }
        },
        CommandSpec("zmscore", arity: -3, flags: [.readonly, .fast, .sharedRead], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            let z = try ctx.zset(ctx.args[1])
            ctx.reply.arrayHeader(ctx.args.count - 2)
            for m in ctx.args.dropFirst(2) {
                if let s = z?.score(m) { ctx.reply.double(s) } else { ctx.reply.null() }
            }
        },
        CommandSpec("zcard", arity: 2, flags: [.readonly, .fast, .sharedRead], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            ctx.reply.integer(try ctx.zset(ctx.args[1])?.count ?? 0)
        },
        CommandSpec("zcount", arity: 4, flags: [.readonly, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            let r = try scoreRange(ctx.args[2], ctx.args[3])
            ctx.reply.integer(try ctx.zset(ctx.args[1])?.count(scores: r) ?? 0)
        },
        CommandSpec("zlexcount", arity: 4, flags: [.readonly, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            let r = try lexRange(ctx.args[2], ctx.args[3])
            ctx.reply.integer(try ctx.zset(ctx.args[1])?.count(lex: r) ?? 0)
        },
        CommandSpec("zrange", arity: -4, flags: [.readonly], keys: KeySpec(1, 1, 1), handler: zrange),
        CommandSpec("zrangestore", arity: -5, flags: [.write, .denyOOM], keys: KeySpec(1, 2, 1), handler: zrangestore),
        CommandSpec("zrandmember", arity: -2, flags: [.readonly], keys: KeySpec(1, 1, 1), handler: zrandmember),
        CommandSpec("zrevrange", arity: -4, flags: [.readonly], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            try legacyRange(ctx, mode: .rank, reverse: true)
        },
        CommandSpec("zrangebyscore", arity: -4, flags: [.readonly], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            try legacyRange(ctx, mode: .score, reverse: false)
        },
        CommandSpec("zrevrangebyscore", arity: -4, flags: [.readonly], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            try legacyRange(ctx, mode: .score, reverse: true)
        },
        CommandSpec("zrangebylex", arity: -4, flags: [.readonly], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            try legacyRange(ctx, mode: .lex, reverse: false)
        },
        CommandSpec("zrevrangebylex", arity: -4, flags: [.readonly], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            try legacyRange(ctx, mode: .lex, reverse: true)
        },
        CommandSpec("zrank", arity: -3, flags: [.readonly, .fast, .sharedRead], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            try rank(ctx, reverse: false)
        },
        CommandSpec("zrevrank", arity: -3, flags: [.readonly, .fast, .sharedRead], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            try rank(ctx, reverse: true)
        },
        CommandSpec("zpopmin", arity: -2, flags: [.write, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            try pop(ctx, max: false)
        },
        CommandSpec("zpopmax", arity: -2, flags: [.write, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            try pop(ctx, max: true)
        },
        CommandSpec("zmpop", arity: -4, flags: [.write], keys: KeySpec(finder: numkeysFinder(at: 1)), handler: zmpop),
        CommandSpec("zremrangebyrank", arity: 4, flags: [.write], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            let start = try ctx.int(2), end = try ctx.int(3)
            try removeRange(ctx) { z in
                guard let r = ListCommands.clampRange(start, end, z.count) else { return [] }
                return z.range(ranks: r.lowerBound, r.upperBound, reverse: false)
            }
        },
        CommandSpec("zremrangebyscore", arity: 4, flags: [.write], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            let r = try scoreRange(ctx.args[2], ctx.args[3])
            try removeRange(ctx) { $0.range(scores: r, reverse: false) }
        },
        CommandSpec("zremrangebylex", arity: 4, flags: [.write], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            let r = try lexRange(ctx.args[2], ctx.args[3])
            try removeRange(ctx) { $0.range(lex: r, reverse: false) }
        },
        CommandSpec("zscan", arity: -3, flags: [.readonly], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            try collectionScan(ctx) { () throws(CommandError) -> [(Bytes, Bytes?)]? in
                try ctx.zset(ctx.args[1]).map { $0.pairs.map { ($0.0, Bytes(formatDouble($0.1))) } }
            }
        },
    ]

    static func zadd(_ ctx: CommandContext) throws(CommandError) {
        var nx = false, xx = false, gt = false, lt = false, ch = false, incr = false
        var i = 2
        while i < ctx.args.count {
            let a = ctx.args[i]
            if a.equalsIgnoringCase("nx") { nx = true }
            else if a.equalsIgnoringCase("xx") { xx = true }
            else if a.equalsIgnoringCase("gt") { gt = true }
            else if a.equalsIgnoringCase("lt") { lt = true }
            else if a.equalsIgnoringCase("ch") { ch = true }
            else if a.equalsIgnoringCase("incr") { incr = true }
            else { break }
            i += 1
        }
        let pairs = ctx.args.count - i
        guard pairs > 0, pairs % 2 == 0 else { throw .syntax }
        if nx && xx { throw CommandError("ERR XX and NX options at the same time are not compatible") }
        if (gt && nx) || (lt && nx) || (gt && lt) {
            throw CommandError("ERR GT, LT, and/or NX options at the same time are not compatible")
        }
        if incr && pairs != 2 { throw CommandError("ERR INCR option supports a single increment-element pair") }
        var scores: [Double] = []
        for j in stride(from: i, to: ctx.args.count, by: 2) {
            guard let s = Numbers.double(ctx.args[j]) else { throw .notFloat }
            scores.append(s)
        }
        let key = ctx.args[1]
        if xx, try ctx.zset(key) == nil {
            if incr { ctx.reply.null() } else { ctx.reply.integer(0) }
            return
        }
        var added = 0, changed = 0
        var incrResult: Double? = nil
        try ctx.modifySortedSet(key) { (z) throws(CommandError) in
        for (n, j) in stride(from: i, to: ctx.args.count, by: 2).enumerated() {
            let member = ctx.args[j + 1]
            var score = scores[n]
            if let found = z.lookup(member) {
                let old = found.score
                if nx { continue }
                if incr {
                    score = old + score
                    guard !score.isNaN else { throw CommandError("ERR resulting score is not a number (NaN)") }
                }
                if (gt && score <= old) || (lt && score >= old) { continue }
                incrResult = score
                if score != old { z.update(member, found, to: score); changed += 1 }
            } else {
                if xx { continue }
                z.add(member, score)
                added += 1
                incrResult = score
            }
        }
        }
        ctx.dirty += added + changed
        if incr {
            if let r = incrResult { ctx.reply.double(r) } else { ctx.reply.null() }
        } else {
            ctx.reply.integer(ch ? added + changed : added)
        }
    }

    static func scoreBound(_ b: Bytes) throws(CommandError) -> (Double, Bool) {
        if b.count > 0 && b[0] == UInt8(ascii: "(") {
            guard let v = Numbers.rangeDouble(b.slice(1..<b.count)) else { throw .minMaxNotFloat }
            return (v, true)
        }
        guard let v = Numbers.rangeDouble(b) else { throw .minMaxNotFloat }
        return (v, false)
    }

    static func scoreRange(_ min: Bytes, _ max: Bytes) throws(CommandError) -> ScoreRange {
        let lo = try scoreBound(min), hi = try scoreBound(max)
        return ScoreRange(min: lo.0, max: hi.0, minExclusive: lo.1, maxExclusive: hi.1)
    }

    static func lexBound(_ b: Bytes) throws(CommandError) -> LexBound {
        guard b.count > 0 else { throw .minMaxNotLex }
        switch b[0] {
        case UInt8(ascii: "+") where b.count == 1: return .positiveInfinity
        case UInt8(ascii: "-") where b.count == 1: return .negativeInfinity
        case UInt8(ascii: "["): return .inclusive(b.slice(1..<b.count))
        case UInt8(ascii: "("): return .exclusive(b.slice(1..<b.count))
        default: throw .minMaxNotLex
        }
    }

    static func lexRange(_ min: Bytes, _ max: Bytes) throws(CommandError) -> LexRange {
        LexRange(min: try lexBound(min), max: try lexBound(max))
    }

    enum RangeMode { case rank, score, lex }

    struct RangeRequest {
        var mode = RangeMode.rank
        var reverse = false
        var withScores = false
        var limit: (Int, Int)? = nil
    }

    /// The options of every ZRANGE form, read as Redis reads them: BYSCORE/BYLEX and REV
    /// only where the command leaves them open and only once, LIMIT wherever two arguments
    /// follow it, WITHSCORES except in ZRANGESTORE. LIMIT with a count in a rank range and
    /// WITHSCORES in a lex range are refused after all options are read.
    static func rangeRequest(_ ctx: CommandContext, from start: Int, mode fixedMode: RangeMode? = nil,
                             reverse fixedReverse: Bool? = nil, store: Bool = false) throws(CommandError) -> RangeRequest {
        var q = RangeRequest()
        var mode = fixedMode, reverse = fixedReverse
        var i = start
        while i < ctx.args.count {
            if !store && ctx.option(i, "withscores") { q.withScores = true }
            else if ctx.option(i, "limit") && i + 2 < ctx.args.count {
                q.limit = (try ctx.int(i + 1), try ctx.int(i + 2))
                i += 2
            } else if reverse == nil && ctx.option(i, "rev") { reverse = true }
            else if mode == nil && ctx.option(i, "bylex") { mode = .lex }
            else if mode == nil && ctx.option(i, "byscore") { mode = .score }
            else { throw .syntax }
            i += 1
        }
        q.mode = mode ?? .rank
        q.reverse = reverse ?? false
        if let limit = q.limit, limit.1 != -1, q.mode == .rank {
            throw CommandError("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX")
        }
        if q.withScores && q.mode == .lex {
            throw CommandError("ERR syntax error, WITHSCORES not supported in combination with BYLEX")
        }
        if q.mode == .rank { q.limit = nil }
        return q
    }

    static func zrange(_ ctx: CommandContext) throws(CommandError) {
        let q = try rangeRequest(ctx, from: 4)
        let items = try select(ctx, q, key: ctx.args[1], ctx.args[2], ctx.args[3])
        writeScored(ctx, items, withScores: q.withScores)
    }

    static func zrangestore(_ ctx: CommandContext) throws(CommandError) {
        let q = try rangeRequest(ctx, from: 5, store: true)
        let items = try select(ctx, q, key: ctx.args[2], ctx.args[3], ctx.args[4])
        var z = SortedSetValue()
        for (m, s) in items { z.add(m, s) }
        storeSortedSet(ctx, ctx.args[1], z, event: "zrangestore")
    }

    /// With REV, BYSCORE/BYLEX take their bounds as max then min.
    static func select(_ ctx: CommandContext, _ q: RangeRequest, key: Bytes, _ first: Bytes, _ second: Bytes) throws(CommandError) -> [(Bytes, Double)] {
        let (min, max) = q.reverse && q.mode != .rank ? (second, first) : (first, second)
        return try selectRange(ctx, key: key, mode: q.mode, min: min, max: max, reverse: q.reverse, limit: q.limit)
    }

    /// ZREVRANGE, ZRANGEBYSCORE, ZREVRANGEBYSCORE, ZRANGEBYLEX, ZREVRANGEBYLEX.
    static func legacyRange(_ ctx: CommandContext, mode: RangeMode, reverse: Bool) throws(CommandError) {
        let q = try rangeRequest(ctx, from: 4, mode: mode, reverse: reverse)
        let items = try select(ctx, q, key: ctx.args[1], ctx.args[2], ctx.args[3])
        writeScored(ctx, items, withScores: q.withScores)
    }

    static func selectRange(_ ctx: CommandContext, key: Bytes, mode: RangeMode, min: Bytes, max: Bytes, reverse: Bool,
                            limit: (Int, Int)?) throws(CommandError) -> [(Bytes, Double)] {
        var items: [(Bytes, Double)] = []
        switch mode {
        case .rank:
            guard let start = Numbers.int(min), let end = Numbers.int(max) else { throw .notInteger }
            if let z = try ctx.zset(key), let r = ListCommands.clampRange(start, end, z.count) {
                items = z.range(ranks: r.lowerBound, r.upperBound, reverse: reverse)
            }
        case .score:
            let r = try scoreRange(min, max)
            if let z = try ctx.zset(key) {
                let (offset, count) = limit ?? (0, -1)
                if offset >= 0 { items = z.range(scores: r, reverse: reverse, offset: offset, limit: count) }
            }
        case .lex:
            let r = try lexRange(min, max)
            if let z = try ctx.zset(key) {
                let (offset, count) = limit ?? (0, -1)
                if offset >= 0 { items = z.range(lex: r, reverse: reverse, offset: offset, limit: count) }
            }
        }
        return items
    }

    /// Members, or (member, score) pairs: flat in RESP2, nested pairs in RESP3.
    static func writeScored(_ ctx: CommandContext, _ items: [(Bytes, Double)], withScores: Bool) {
        if !withScores {
            ctx.reply.arrayHeader(items.count)
            for (m, _) in items { ctx.reply.bulk(m) }
        } else if ctx.reply.isRESP3 {
            ctx.reply.arrayHeader(items.count)
            for (m, s) in items { ctx.reply.arrayHeader(2); ctx.reply.bulk(m); ctx.reply.double(s) }
        } else {
            ctx.reply.arrayHeader(items.count * 2)
            for (m, s) in items { ctx.reply.bulk(m); ctx.reply.double(s) }
        }
    }

    /// ZRANDMEMBER key [count [WITHSCORES]]: picks by random rank, O(log n) each, so that a
    /// few picks from a large set do not copy it. A positive count gives distinct members,
    /// a negative one may repeat them.
    static func zrandmember(_ ctx: CommandContext) throws(CommandError) {
        let (count, withScores) = try randomCountArguments(ctx, flag: "withscores")
        let z = try ctx.zset(ctx.args[1])
        guard let count else {
            if let z, z.count > 0 { ctx.reply.bulk(z.member(atRank: Int.random(in: 0..<z.count))) } else { ctx.reply.null() }
            return
        }
        guard let z, z.count > 0, count != 0 else { ctx.reply.emptyArray(); return }
        var ranks: [Int]
        if count < 0 {
            ranks = (0..<count.magnitude).map { _ in Int.random(in: 0..<z.count) }
        } else if count >= z.count {
            ranks = Array(0..<z.count).shuffled()
        } else if count * 3 > z.count {
            ranks = Array(Array(0..<z.count).shuffled().prefix(count))
        } else {
            var picked = Set<Int>()
            while picked.count < count { picked.insert(Int.random(in: 0..<z.count)) }
            ranks = Array(picked)
        }
        writeScored(ctx, ranks.map { r in let m = z.member(atRank: r); return (m, z.score(m)!) }, withScores: withScores)
    }

    static func rank(_ ctx: CommandContext, reverse: Bool) throws(CommandError) {
        var withScore = false
        if ctx.args.count == 4 {
            guard ctx.option(3, "withscore") else { throw .syntax }
            withScore = true
        } else if ctx.args.count > 4 { throw .syntax }
        guard let z = try ctx.zset(ctx.args[1]), let r = z.rank(ctx.args[2], reverse: reverse) else {
            if withScore { ctx.reply.nullArray() } else { ctx.reply.null() }
            return
        }
        if withScore {
            ctx.reply.arrayHeader(2)
            ctx.reply.integer(r)
            ctx.reply.double(z.score(ctx.args[2])!)
        } else {
            ctx.reply.integer(r)
        }
    }

    /// Pops up to `count` lowest (or highest) members.
    static func popItems(_ z: inout SortedSetValue, count: Int, max: Bool) -> [(Bytes, Double)] {
        let n = min(count, z.count)
        guard n > 0 else { return [] }
        let items = max ? z.range(ranks: 0, n - 1, reverse: true) : z.range(ranks: 0, n - 1, reverse: false)
        for (m, _) in items { z.remove(m) }
        return items
    }

    static func pop(_ ctx: CommandContext, max: Bool) throws(CommandError) {
        let key = ctx.args[1]
        if ctx.args.count > 3 { throw .syntax }
        var count = 1
        let hasCount = ctx.args.count == 3
        if hasCount {
            guard let c = Numbers.int(ctx.args[2]), c >= 0 else { throw CommandError("ERR value is out of range, must be positive") }
            count = c
        }
        guard try ctx.zset(key) != nil else { ctx.reply.emptyArray(); return }
        let (items, empty) = try ctx.modifySortedSet(key) { z in
            (popItems(&z, count: count, max: max), z.count == 0)
        }
        ctx.deleteIfEmpty(key, empty)
        ctx.dirty += items.count
        if hasCount {
            writeScored(ctx, items, withScores: true)
        } else {
            ctx.reply.arrayHeader(items.count * 2)
            for (m, s) in items { ctx.reply.bulk(m); ctx.reply.double(s) }
        }
    }

    static func zmpop(_ ctx: CommandContext) throws(CommandError) {
        let (keys, max, count) = try parseMultiPop(ctx, at: 1)
        for key in keys {
            guard let z = try ctx.zset(key), z.count > 0 else { continue }
            try popReply(ctx, key, max: max, count: count)
            return
        }
        ctx.reply.nullArray()
    }

    /// Parses ZMPOP's `numkeys key... MIN|MAX [COUNT n]` starting at `index`; true for MAX.
    static func parseMultiPop(_ ctx: CommandContext, at index: Int) throws(CommandError) -> ([Bytes], Bool, Int) {
        let (keys, min, count) = try multiPopArguments(ctx, at: index, sides: ("min", "max"))
        return (keys, !min, count)
    }

    /// Pops up to `count` members of the non-empty sorted set at `key` and replies
    /// `[key, [[member, score]...]]`.
    static func popReply(_ ctx: CommandContext, _ key: Bytes, max: Bool, count: Int) throws(CommandError) {
        let (items, empty) = try ctx.modifySortedSet(key) { z in
            (popItems(&z, count: count, max: max), z.count == 0)
        }
        ctx.notify(.zset, max ? "zpopmax" : "zpopmin", key)
        ctx.deleteIfEmpty(key, empty)
        ctx.dirty += items.count
        ctx.reply.arrayHeader(2)
        ctx.reply.bulk(key)
        ctx.reply.arrayHeader(items.count)
        for (m, s) in items { ctx.reply.arrayHeader(2); ctx.reply.bulk(m); ctx.reply.double(s) }
    }

    static func removeRange(_ ctx: CommandContext, _ select: (SortedSetValue) -> [(Bytes, Double)]) throws(CommandError) {
        let key = ctx.args[1]
        guard try ctx.zset(key) != nil else { ctx.reply.integer(0); return }
        let (items, empty) = try ctx.modifySortedSet(key) { z in
            let items = select(z)
            for (m, _) in items { z.remove(m) }
            return (items, z.count == 0)
        }
        ctx.deleteIfEmpty(key, empty)
        ctx.dirty += items.count
        ctx.reply.integer(items.count)
    }
}
