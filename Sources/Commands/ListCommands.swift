import DequeModule
import Keyspace
import RESP

/// List commands. Lists are deques, so both ends cost O(1).
enum ListCommands {
    static let specs: [CommandSpec] = [
        CommandSpec("lpush", arity: -3, flags: [.write, .denyOOM, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            try push(ctx, left: true, onlyExisting: false)
        },
        CommandSpec("rpush", arity: -3, flags: [.write, .denyOOM, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            try push(ctx, left: false, onlyExisting: false)
        },
        CommandSpec("lpushx", arity: -3, flags: [.write, .denyOOM, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            try push(ctx, left: true, onlyExisting: true)
        },
        CommandSpec("rpushx", arity: -3, flags: [.write, .denyOOM, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            try push(ctx, left: false, onlyExisting: true)
        },
        CommandSpec("lpop", arity: -2, flags: [.write, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            try pop(ctx, left: true)
        },
        CommandSpec("rpop", arity: -2, flags: [.write, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            try pop(ctx, left: false)
        },
        CommandSpec("llen", arity: 2, flags: [.readonly, .fast, .sharedRead], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            ctx.reply.integer(try ctx.list(ctx.args[1])?.items.count ?? 0)
        },
        CommandSpec("lrange", arity: 4, flags: [.readonly, .sharedRead], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            let start = try ctx.int(2), end = try ctx.int(3)
            guard let l = try ctx.list(ctx.args[1]) else { ctx.reply.emptyArray(); return }
            guard let r = clampRange(start, end, l.items.count) else { ctx.reply.emptyArray(); return }
            ctx.reply.arrayHeader(r.count)
            for i in r { ctx.reply.bulk(l.items[i]) }
        },
        CommandSpec("lindex", arity: 3, flags: [.readonly, .sharedRead], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            // The key first, then the index, as Redis checks them.
            guard let l = try ctx.list(ctx.args[1]) else { ctx.reply.null(); return }
            let index = try ctx.int(2)
            let i = index < 0 ? l.items.count + index : index
            if i >= 0 && i < l.items.count { ctx.reply.bulk(l.items[i]) } else { ctx.reply.null() }
        },
        CommandSpec("lset", arity: 4, flags: [.write, .denyOOM], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            guard let l = try ctx.list(ctx.args[1]) else { throw .noSuchKey }
            let index = try ctx.int(2)
            let i = index < 0 ? l.items.count + index : index
            guard i >= 0 && i < l.items.count else { throw .indexOutOfRange }
            l.items[i] = ctx.args[3]
            ctx.dirty += 1
            ctx.reply.ok()
        },
        CommandSpec("linsert", arity: 5, flags: [.write, .denyOOM], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            let before: Bool
            if ctx.option(2, "before") { before = true } else if ctx.option(2, "after") { before = false } else { throw .syntax }
            guard let l = try ctx.list(ctx.args[1]) else { ctx.reply.integer(0); return }
            guard let at = l.items.firstIndex(of: ctx.args[3]) else { ctx.reply.integer(-1); return }
            l.items.insert(ctx.args[4], at: before ? at : at + 1)
            ctx.dirty += 1
            ctx.reply.integer(l.items.count)
        },
        CommandSpec("lrem", arity: 4, flags: [.write], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            let count = try ctx.int(2)
            let key = ctx.args[1], value = ctx.args[3]
            guard let l = try ctx.list(key) else { ctx.reply.integer(0); return }
            var removed = 0
            let limit = count == 0 ? Int.max : Int(clamping: count.magnitude)
            if count >= 0 {
                var i = 0
                while i < l.items.count && removed < limit {
                    if l.items[i] == value { l.items.remove(at: i); removed += 1 } else { i += 1 }
                }
            } else {
                var i = l.items.count - 1
                while i >= 0 && removed < limit {
                    if l.items[i] == value { l.items.remove(at: i); removed += 1 }
                    i -= 1
                }
            }
            ctx.deleteIfEmpty(key, l.items.isEmpty)
            ctx.dirty += removed
            ctx.reply.integer(removed)
        },
        CommandSpec("ltrim", arity: 4, flags: [.write], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            let start = try ctx.int(2), end = try ctx.int(3)
            let key = ctx.args[1]
            guard let l = try ctx.list(key) else { ctx.reply.ok(); return }
            if let r = clampRange(start, end, l.items.count) {
                l.items = Deque(l.items[r])
            } else {
                l.items.removeAll()
            }
            ctx.deleteIfEmpty(key, l.items.isEmpty)
            ctx.dirty += 1
            ctx.reply.ok()
        },
        CommandSpec("lpos", arity: -3, flags: [.readonly], keys: KeySpec(1, 1, 1), handler: lpos),
        CommandSpec("lmove", arity: 5, flags: [.write, .denyOOM], keys: KeySpec(1, 2, 1)) { ctx throws(CommandError) in
            let from = try side(ctx, 3), to = try side(ctx, 4)
            try move(ctx, fromLeft: from, toLeft: to)
        },
        CommandSpec("rpoplpush", arity: 3, flags: [.write, .denyOOM], keys: KeySpec(1, 2, 1)) { ctx throws(CommandError) in
            try move(ctx, fromLeft: false, toLeft: true)
        },
        CommandSpec("lmpop", arity: -4, flags: [.write], keys: KeySpec(finder: numkeysFinder(at: 1)), handler: lmpop),
    ]

    /// Normalises Redis's inclusive, possibly negative `start...end` against `count`.
    static func clampRange(_ start: Int, _ end: Int, _ count: Int) -> ClosedRange<Int>? {
        var s = start < 0 ? count + start : start
        var e = end < 0 ? count + end : end
        if s < 0 { s = 0 }
        if e >= count { e = count - 1 }
        guard s <= e, s < count else { return nil }
        return s...e
    }

    static func side(_ ctx: CommandContext, _ i: Int) throws(CommandError) -> Bool {
        if ctx.option(i, "left") { return true }
        if ctx.option(i, "right") { return false }
        throw .syntax
    }

    static func push(_ ctx: CommandContext, left: Bool, onlyExisting: Bool) throws(CommandError) {
        let key = ctx.args[1]
        let l: ListValue
        if onlyExisting {
            guard let existing = try ctx.list(key) else { ctx.reply.integer(0); return }
            l = existing
        } else {
            l = try ctx.listOrCreate(key)
        }
        for v in ctx.args.dropFirst(2) {
            if left { l.items.prepend(v) } else { l.items.append(v) }
        }
        ctx.dirty += ctx.args.count - 2
        ctx.reply.integer(l.items.count)
    }

    static func pop(_ ctx: CommandContext, left: Bool) throws(CommandError) {
        let key = ctx.args[1]
        var count: Int? = nil
        if ctx.args.count > 3 { throw .wrongArity(left ? "lpop" : "rpop") }
        if ctx.args.count == 3 {
            guard let n = Numbers.int(ctx.args[2]), n >= 0 else {
                throw CommandError("ERR value is out of range, must be positive")
            }
            count = n
        }
        guard let l = try ctx.list(key) else {
            if count != nil { ctx.reply.nullArray() } else { ctx.reply.null() }
            return
        }
        guard let n = count else {
            let v = left ? l.items.removeFirst() : l.items.removeLast()
            ctx.deleteIfEmpty(key, l.items.isEmpty)
            ctx.dirty += 1
            ctx.reply.bulk(v)
            return
        }
        let taken = min(n, l.items.count)
        ctx.reply.arrayHeader(taken)
        for _ in 0..<taken { ctx.reply.bulk(left ? l.items.removeFirst() : l.items.removeLast()) }
        ctx.deleteIfEmpty(key, l.items.isEmpty)
        ctx.dirty += taken
    }

    static func move(_ ctx: CommandContext, fromLeft: Bool, toLeft: Bool) throws(CommandError) {
        guard try ctx.list(ctx.args[1]) != nil else { ctx.reply.null(); return }
        try move(ctx, from: ctx.args[1], to: ctx.args[2], fromLeft: fromLeft, toLeft: toLeft)
    }

    /// Moves one element from the existing list `src` to `dst` and replies it.
    static func move(_ ctx: CommandContext, from src: Bytes, to dst: Bytes, fromLeft: Bool, toLeft: Bool) throws(CommandError) {
        let from = try ctx.list(src)!
        let existing = try ctx.list(dst)  // WRONGTYPE before anything is popped
        let v = fromLeft ? from.items.removeFirst() : from.items.removeLast()
        let target: ListValue
        if let existing { target = existing } else {
            target = ListValue()
            ctx.db(dst).add(dst, .list(target))
        }
        if toLeft { target.items.prepend(v) } else { target.items.append(v) }
        ctx.notify(.list, fromLeft ? "lpop" : "rpop", src)
        ctx.notify(.list, toLeft ? "lpush" : "rpush", dst)
        ctx.deleteIfEmpty(src, from.items.isEmpty)
        ctx.dirty += 1
        ctx.reply.bulk(v)
    }

    static func lpos(_ ctx: CommandContext) throws(CommandError) {
        var rank = 1, count: Int? = nil, maxlen = 0
        var i = 3
        while i < ctx.args.count {
            guard i + 1 < ctx.args.count else { throw .syntax }
            // COUNT and MAXLEN answer a non-number with their own message, as in Redis.
            if ctx.option(i, "rank") {
                let v = try ctx.int(i + 1)
                guard v != 0 else {
                    throw CommandError("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list")
                }
                guard v != Int.min else { throw CommandError("ERR value is out of range") }
                rank = v
            } else if ctx.option(i, "count") {
                guard let v = Numbers.int(ctx.args[i + 1]), v >= 0 else { throw CommandError("ERR COUNT can't be negative") }
                count = v
            } else if ctx.option(i, "maxlen") {
                guard let v = Numbers.int(ctx.args[i + 1]), v >= 0 else { throw CommandError("ERR MAXLEN can't be negative") }
                maxlen = v
            } else { throw .syntax }
            i += 2
        }
        guard let l = try ctx.list(ctx.args[1]) else {
            if count != nil { ctx.reply.emptyArray() } else { ctx.reply.null() }
            return
        }
        let target = ctx.args[2]
        var matches: [Int] = []
        var skip = abs(rank) - 1
        let want = count == nil ? 1 : (count == 0 ? Int.max : count!)
        let n = l.items.count
        var scanned = 0
        var idx = rank > 0 ? 0 : n - 1
        while idx >= 0 && idx < n && matches.count < want && (maxlen == 0 || scanned < maxlen) {
            if l.items[idx] == target {
                if skip > 0 { skip -= 1 } else { matches.append(idx) }
            }
            scanned += 1
            idx += rank > 0 ? 1 : -1
        }
        if count != nil {
            ctx.reply.arrayHeader(matches.count)
            for m in matches { ctx.reply.integer(m) }
        } else if let m = matches.first {
            ctx.reply.integer(m)
        } else {
            ctx.reply.null()
        }
    }

    static func lmpop(_ ctx: CommandContext) throws(CommandError) {
        let (keys, left, count) = try parseMultiPop(ctx, at: 1)
        for key in keys {
            guard let l = try ctx.list(key), !l.items.isEmpty else { continue }
            popReply(ctx, key, l, left: left, count: count)
            return
        }
        ctx.reply.nullArray()
    }

    /// Parses LMPOP's `numkeys key... LEFT|RIGHT [COUNT n]` starting at `index`.
    static func parseMultiPop(_ ctx: CommandContext, at index: Int) throws(CommandError) -> ([Bytes], Bool, Int) {
        try multiPopArguments(ctx, at: index, sides: ("left", "right"))
    }

    /// Pops up to `count` elements of the non-empty list `l` and replies `[key, [elements]]`.
    static func popReply(_ ctx: CommandContext, _ key: Bytes, _ l: ListValue, left: Bool, count: Int) {
        let taken = min(count, l.items.count)
        ctx.reply.arrayHeader(2)
        ctx.reply.bulk(key)
        ctx.reply.arrayHeader(taken)
        for _ in 0..<taken { ctx.reply.bulk(left ? l.items.removeFirst() : l.items.removeLast()) }
        ctx.notify(.list, left ? "lpop" : "rpop", key)
        ctx.deleteIfEmpty(key, l.items.isEmpty)
        ctx.dirty += taken
    }
}
