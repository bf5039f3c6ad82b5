import Keyspace
import RESP

/// ZUNION, ZINTER, ZDIFF, their STORE forms, and ZINTERCARD, by Redis's rules:
/// - a plain set counts as a sorted set whose scores are all 1, a missing key as empty;
/// - WEIGHTS multiply each input's scores, and AGGREGATE (SUM, MIN or MAX) combines the
///   scores of a member found in several inputs;
/// - a sum that is not a number (inf + -inf) counts as 0, and so does a weighted score
///   (inf * 0) where it starts a member's result; ZINTER adds the other inputs' weighted
///   scores as they are, so there an inf * 0 turns a sum to 0 and leaves MIN/MAX alone;
/// - ZDIFF keeps the first input's scores for members no other input has.
/// Inputs may live on several shards: the engine holds every key's shard lock for the
/// whole command, so a STORE reads and writes as one atomic step.
extension SortedSetCommands {
    static let algebraSpecs: [CommandSpec] = [
        CommandSpec("zunionstore", arity: -4, flags: [.write, .denyOOM], keys: KeySpec(finder: storeKeys)) { ctx throws(CommandError) in
            try store(ctx, .union, event: "zunionstore")
        },
        CommandSpec("zinterstore", arity: -4, flags: [.write, .denyOOM], keys: KeySpec(finder: storeKeys)) { ctx throws(CommandError) in
            try store(ctx, .inter, event: "zinterstore")
        },
        CommandSpec("zdiffstore", arity: -4, flags: [.write, .denyOOM], keys: KeySpec(finder: storeKeys)) { ctx throws(CommandError) in
            try store(ctx, .diff, event: "zdiffstore")
        },
        CommandSpec("zunion", arity: -3, flags: [.readonly], keys: KeySpec(finder: numkeysFinder(at: 1))) { ctx throws(CommandError) in
            try reply(ctx, .union)
        },
        CommandSpec("zinter", arity: -3, flags: [.readonly], keys: KeySpec(finder: numkeysFinder(at: 1))) { ctx throws(CommandError) in
            try reply(ctx, .inter)
        },
        CommandSpec("zdiff", arity: -3, flags: [.readonly], keys: KeySpec(finder: numkeysFinder(at: 1))) { ctx throws(CommandError) in
            try reply(ctx, .diff)
        },
        CommandSpec("zintercard", arity: -3, flags: [.readonly], keys: KeySpec(finder: numkeysFinder(at: 1))) { ctx throws(CommandError) in
            let (inputs, options) = try parse(ctx, numkeysAt: 1, .inter, form: .cardinality)
            let n = combine(inputs, .inter, options).count
            ctx.reply.integer(options.limit > 0 ? min(n, options.limit) : n)
        },
    ]

    /// The destination, then `numkeys key...` after it.
    @Sendable static func storeKeys(_ args: [Bytes]) -> [Int] { [1] + numkeysFinder(at: 2)(args) }

    enum Aggregate { case sum, min, max }
    enum Form { case reply, store, cardinality }

    struct AlgebraOptions {
        var weights: [Double]
        var aggregate = Aggregate.sum
        var withScores = false
        var limit = 0
    }

    /// One input: a sorted set's scores, or a plain set's members at score 1.
    enum Input {
        case scored([Bytes: Double])
        case plain(Set<Bytes>)

        var count: Int {
            switch self {
            case .scored(let s): return s.count
            case .plain(let s): return s.count
            }
        }

        func score(_ member: Bytes) -> Double? {
            switch self {
            case .scored(let s): return s[member]
            case .plain(let s): return s.contains(member) ? 1 : nil
            }
        }

        func forEach(_ body: (Bytes, Double) -> Void) {
            switch self {
            case .scored(let s): for (m, v) in s { body(m, v) }
            case .plain(let s): for m in s { body(m, 1) }
            }
        }
    }

    /// Reads the inputs, then the options, in Redis's order (so a wrong type is reported
    /// before a bad option).
    static func parse(_ ctx: CommandContext, numkeysAt index: Int, _ op: SetCommands.Operation,
                      form: Form) throws(CommandError) -> ([Input], AlgebraOptions) {
        guard let n = Numbers.int(ctx.args[index]) else { throw .notInteger }
        guard n >= 1 else {
            throw CommandError("ERR at least 1 input key is needed for '\(ctx.args[0].string.lowercased())' command")
        }
        guard n <= ctx.args.count - index - 1 else { throw .syntax }
        var inputs: [Input] = []
        for key in ctx.args[(index + 1)...(index + n)] {
            guard let e = ctx.lookup(key) else { inputs.append(.scored([:])); continue }
            switch e.value {
            case .zset(let z): inputs.append(.scored(z.table))
            case .set(let s): inputs.append(.plain(s.members))
            default: throw .wrongType
            }
        }
        var options = AlgebraOptions(weights: Array(repeating: 1, count: n))
        var i = index + n + 1
        let combines = op != .diff && form != .cardinality
        while i < ctx.args.count {
            let left = ctx.args.count - i
            if combines && left >= n + 1 && ctx.option(i, "weights") {
                for w in 0..<n {
                    guard let v = Numbers.double(ctx.args[i + 1 + w]) else { throw CommandError("ERR weight value is not a float") }
                    options.weights[w] = v
                }
                i += n + 1
            } else if combines && left >= 2 && ctx.option(i, "aggregate") {
                if ctx.option(i + 1, "sum") { options.aggregate = .sum }
                else if ctx.option(i + 1, "min") { options.aggregate = .min }
                else if ctx.option(i + 1, "max") { options.aggregate = .max }
                else { throw .syntax }
                i += 2
            } else if form == .reply && ctx.option(i, "withscores") {
                options.withScores = true
                i += 1
            } else if form == .cardinality && left >= 2 && ctx.option(i, "limit") {
                guard let l = Numbers.int(ctx.args[i + 1]), l >= 0 else { throw CommandError("ERR LIMIT can't be negative") }
                options.limit = l
                i += 2
            } else {
                throw .syntax
            }
        }
        return (inputs, options)
    }

    /// Scores that are not a number count as 0, as in Redis.
    @inline(__always) static func orZero(_ v: Double) -> Double { v.isNaN ? 0 : v }

    /// Combines a member's result so far with one more score (which may be NaN).
    static func aggregate(_ sofar: Double, _ v: Double, _ how: Aggregate) -> Double {
        switch how {
        case .sum: return orZero(sofar + v)
        case .min: return v < sofar ? v : sofar
        case .max: return v > sofar ? v : sofar
        }
    }

    static func combine(_ inputs: [Input], _ op: SetCommands.Operation, _ options: AlgebraOptions) -> [Bytes: Double] {
        var result: [Bytes: Double] = [:]
        // Smallest input first, as Redis orders them; the order shows where infinities meet
        // (inf + -inf is 0, then + inf is inf; inf + inf + -inf is 0).
        let order = inputs.indices.sorted { (inputs[$0].count, $0) < (inputs[$1].count, $1) }
        switch op {
        case .union:
            for i in order {
                inputs[i].forEach { m, s in
                    let v = orZero(s * options.weights[i])
                    if let old = result[m] { result[m] = aggregate(old, v, options.aggregate) } else { result[m] = v }
                }
            }
        case .inter:
            // Walk the smallest input and look each member up in the others.
            inputs[order[0]].forEach { m, s in
                var v = orZero(s * options.weights[order[0]])
                for j in order.dropFirst() {
                    guard let other = inputs[j].score(m) else { return }
                    v = aggregate(v, other * options.weights[j], options.aggregate)
                }
                result[m] = v
            }
        case .diff:
            inputs[0].forEach { m, s in
                if !inputs.dropFirst().contains(where: { $0.score(m) != nil }) { result[m] = s }
            }
        }
        return result
    }

    static func sortedSet(_ scores: [Bytes: Double]) -> SortedSetValue {
        var z = SortedSetValue()
        for (m, s) in scores { z.add(m, s) }
        return z
    }

    static func reply(_ ctx: CommandContext, _ op: SetCommands.Operation) throws(CommandError) {
        let (inputs, options) = try parse(ctx, numkeysAt: 1, op, form: .reply)
        // Sorted here rather than through a SortedSetValue, which stores -0 as 0: Redis
        // replies from a temporary set that keeps a -0 (inf * 0 aside, -1 * 0 makes one).
        let items = combine(inputs, op, options).sorted { $0.value < $1.value || ($0.value == $1.value && $0.key < $1.key) }
        writeScored(ctx, items.map { ($0.key, $0.value) }, withScores: options.withScores)
    }

    static func store(_ ctx: CommandContext, _ op: SetCommands.Operation, event: String) throws(CommandError) {
        let (inputs, options) = try parse(ctx, numkeysAt: 2, op, form: .store)
        storeSortedSet(ctx, ctx.args[1], sortedSet(combine(inputs, op, options)), event: event)
    }

    /// Replaces `dst` with `z` (deletes it when `z` is empty) and replies with its size.
    static func storeSortedSet(_ ctx: CommandContext, _ dst: Bytes, _ z: SortedSetValue, event: String) {
        storeResult(ctx, dst, z.count > 0 ? .zset(z) : nil, .zset, event)
        ctx.reply.integer(z.count)
    }
}
