import Keyspace
import RESP

// Argument shapes and reply rules that several command families share.

/// Key positions for commands shaped `CMD [dest] numkeys key [key ...] ...`.
func numkeysFinder(at index: Int) -> @Sendable ([Bytes]) -> [Int] {
    { args in
        guard index < args.count, let n = Numbers.int(args[index]), n > 0, n < args.count - index else { return [] }
        return Array((index + 1)...(index + n))
    }
}

/// Parses `numkeys key...` at `index`; returns the keys and the index after them. Redis
/// answers more keys than arguments differently per command: SINTERCARD names the
/// problem, LMPOP and ZMPOP (which need an argument after the keys) call it a syntax error.
func numkeys(_ ctx: CommandContext, at index: Int, tooMany: CommandError = CommandError("ERR Number of keys can't be greater than number of args"))
    throws(CommandError) -> ([Bytes], Int) {
    guard let n = Numbers.int(ctx.args[index]), n > 0 else { throw CommandError("ERR numkeys should be greater than 0") }
    guard n < ctx.args.count - index else { throw tooMany }
    return (Array(ctx.args[(index + 1)...(index + n)]), index + n + 1)
}

/// MATCH / COUNT / TYPE options shared by SCAN, HSCAN, SSCAN and ZSCAN.
struct ScanOptions {
    var pattern: Bytes? = nil
    var count = 10
    var type: StaticString? = nil

    static func parse(_ ctx: CommandContext, from start: Int, allowType: Bool) throws(CommandError) -> ScanOptions {
        var o = ScanOptions()
        var i = start
        while i < ctx.args.count {
            guard i + 1 < ctx.args.count else { throw .syntax }
            if ctx.option(i, "match") {
                o.pattern = ctx.args[i + 1] == Bytes("*") ? nil : ctx.args[i + 1]
            } else if ctx.option(i, "count") {
                guard let n = Numbers.int(ctx.args[i + 1]) else { throw .notInteger }
                guard n >= 1 else { throw .syntax }
                o.count = n
            } else if allowType && ctx.option(i, "type") {
                let t = ctx.args[i + 1]
                for name: StaticString in ["string", "list", "hash", "set", "zset", "stream"] where t.equalsIgnoringCase(name) {
                    o.type = name
                }
                if o.type == nil { o.type = "unknown-type" }
            } else { throw .syntax }
            i += 2
        }
        return o
    }
}

/// Puts a STORE command's result at `dst`: replaces it with `value`, or deletes it when the
/// result is empty (nil), with the keyspace event Redis sends in each case: `event` for a
/// stored result, `del` when the empty result removed an existing key, none otherwise.
func storeResult(_ ctx: CommandContext, _ dst: Bytes, _ value: Value?, _ flag: NotifyFlags, _ event: String) {
    let existed = ctx.delete(dst)
    if let value {
        ctx.db(dst).add(dst, value)
        ctx.notify(flag, event, dst)
        ctx.dirty += 1
    } else if existed {
        ctx.notify(.generic, "del", dst)
        ctx.dirty += 1
    }
}

/// HRANDFIELD's and ZRANDMEMBER's `[count [flag]]` from args[2]: the count (nil when absent)
/// and whether `flag` (WITHVALUES, WITHSCORES) follows it. A count beyond half the integer
/// range is refused, as Valkey's default max-rand-count does: a negative count asks for
/// that many picks.
func randomCountArguments(_ ctx: CommandContext, flag: StaticString) throws(CommandError) -> (count: Int?, withFlag: Bool) {
    guard ctx.args.count >= 3 else { return (nil, false) }
    guard let c = Numbers.int(ctx.args[2]) else { throw .notInteger }
    guard c >= -Int.max / 2 && c <= Int.max / 2 else { throw CommandError("ERR value is out of range") }
    if ctx.args.count == 3 { return (c, false) }
    guard ctx.args.count == 4, ctx.option(3, flag) else { throw .syntax }
    return (c, true)
}

/// Redis's random-count rule: a positive count gives distinct elements (at most all of
/// them), a negative count gives |count| elements that may repeat.
func randomPick<T>(_ items: [T], count: Int) -> [T] {
    if items.isEmpty || count == 0 { return [] }
    if count > 0 { return Array(items.shuffled().prefix(count)) }
    return (0..<count.magnitude).map { _ in items.randomElement()! }
}

/// HSCAN / SSCAN / ZSCAN: the whole collection is returned in one call with cursor 0,
/// which SCAN's contract allows (Redis does the same for small encodings). `items` gives
/// (element, value-or-score) pairs, nil for a missing key.
func collectionScan(_ ctx: CommandContext, _ items: () throws(CommandError) -> [(Bytes, Bytes?)]?) throws(CommandError) {
    guard Numbers.int(ctx.args[2]).map({ $0 >= 0 }) ?? (UInt64(ctx.args[2].string) != nil) else {
        throw CommandError("ERR invalid cursor")
    }
    let opts = try ScanOptions.parse(ctx, from: 3, allowType: false)
    var out: [Bytes] = []
    for (element, value) in try items() ?? [] {
        if let p = opts.pattern, !Glob.matches(p, element) { continue }
        out.append(element)
        if let value { out.append(value) }
    }
    ctx.reply.arrayHeader(2)
    ctx.reply.bulk("0")
    ctx.reply.bulkArray(out)
}

/// `numkeys key... SIDE [COUNT n]` of LMPOP and ZMPOP and their blocking forms, read in
/// Redis's order: the key count, the side word (true for the first of `sides`), then the
/// options left to right, so that the first bad one names the error. The blocking forms
/// read their timeout only after all of this, as Redis does.
func multiPopArguments(_ ctx: CommandContext, at index: Int,
                       sides: (StaticString, StaticString)) throws(CommandError) -> (keys: [Bytes], first: Bool, count: Int) {
    let (keys, next) = try numkeys(ctx, at: index, tooMany: .syntax)
    guard next < ctx.args.count else { throw .syntax }
    let first: Bool
    if ctx.option(next, sides.0) { first = true } else if ctx.option(next, sides.1) { first = false } else { throw .syntax }
    var count: Int?
    var i = next + 1
    while i < ctx.args.count {
        guard count == nil, ctx.option(i, "count"), i + 1 < ctx.args.count else { throw .syntax }
        guard let c = Numbers.int(ctx.args[i + 1]), c > 0 else { throw CommandError("ERR count should be greater than 0") }
        count = c
        i += 2
    }
    return (keys, first, count ?? 1)
}
