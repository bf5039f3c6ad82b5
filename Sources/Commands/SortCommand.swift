import Glibc
import Keyspace
import RESP

/// SORT and SORT_RO: the elements of a list, set or sorted set, ordered numerically (each
/// read as a double) or with ALPHA as strings, optionally by other keys' values (BY
/// `weight_*`, or a hash field with `*->field`), cut with LIMIT, each replaced by or joined
/// with other keys' values (GET `object_*`, GET `#` for the element itself), and with STORE
/// written to a list.
///
/// BY and GET patterns name keys the command's arguments do not, on any shard, so SORT
/// holds every shard's lock (`readsAnyKey`). What Redis defines is followed exactly: equal
/// numeric scores order by the element's bytes, DESC reverses whole comparisons, an element
/// whose BY key is missing scores 0 (or sorts first with ALPHA), a BY pattern without `*`
/// skips sorting, and a set left unsorted that way is sorted with ALPHA anyway when STORE is
/// given. ALPHA compares bytes up to the first NUL, as strcoll does in the C locale (Redis
/// collates in the server's locale); with STORE it compares whole byte strings, as Redis.
enum SortCommand {
    static let specs: [CommandSpec] = [
        CommandSpec("sort", arity: -2, flags: [.write, .denyOOM, .readsAnyKey], keys: KeySpec(finder: sortKeys)) { ctx throws(CommandError) in
            try run(ctx, readOnly: false)
        },
        CommandSpec("sort_ro", arity: -2, flags: [.readonly, .readsAnyKey], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            try run(ctx, readOnly: true)
        },
    ]

    /// The key, and STORE's destination where the options name one (the last STORE, the
    /// one SORT writes to, as Redis's sortGetKeys reports).
    @Sendable static func sortKeys(_ args: [Bytes]) -> [Int] {
        var store: Int?
        var j = 2
        while j < args.count {
            let a = args[j]
            if a.equalsIgnoringCase("store") && j + 1 < args.count { store = j + 1; j += 2; continue }
            if a.equalsIgnoringCase("limit") { j += 3; continue }
            if a.equalsIgnoringCase("by") || a.equalsIgnoringCase("get") { j += 2; continue }
            j += 1
        }
        return [1] + (store.map { [$0] } ?? [])
    }

    struct Options {
        var descending = false, alpha = false
        var offset = 0, count = -1
        var by: Bytes?
        var gets: [Bytes] = []
        var store: Bytes?
        /// A BY pattern without `*`: the elements stay in the order they are stored.
        var unsorted: Bool { by.map { !$0.array.contains(UInt8(ascii: "*")) } ?? false }
    }

    static func parse(_ ctx: CommandContext, readOnly: Bool) throws(CommandError) -> Options {
        var o = Options()
        var j = 2
        while j < ctx.args.count {
            let left = ctx.args.count - j - 1
            if ctx.option(j, "asc") { o.descending = false }
            else if ctx.option(j, "desc") { o.descending = true }
            else if ctx.option(j, "alpha") { o.alpha = true }
            else if ctx.option(j, "limit") && left >= 2 {
                o.offset = try ctx.int(j + 1)
                o.count = try ctx.int(j + 2)
                j += 2
            } else if !readOnly && ctx.option(j, "store") && left >= 1 { o.store = ctx.args[j + 1]; j += 1 }
            else if ctx.option(j, "by") && left >= 1 { o.by = ctx.args[j + 1]; j += 1 }
            else if ctx.option(j, "get") && left >= 1 { o.gets.append(ctx.args[j + 1]); j += 1 }
            else { throw .syntax }
            j += 1
        }
        return o
    }

    static func run(_ ctx: CommandContext, readOnly: Bool) throws(CommandError) {
        var o = try parse(ctx, readOnly: readOnly)
        var elements: [Bytes] = []
        var isSet = false, isList = false
        var zset: SortedSetValue?
        if let e = ctx.lookup(ctx.args[1]) {
            switch e.value {
            case .list(let l): elements = Array(l.items); isList = true
            case .set(let s): elements = Array(s.members); isSet = true
            case .zset: zset = e.modifySortedSet { z in z.convertToTree(); return z }
            default: throw .wrongType
            }
        }
        var unsorted = o.unsorted
        if unsorted && isSet && (o.store != nil || ctx.inScript) {
            // A set has no order of its own: what is stored, or what a script sees, must
            // not depend on the table (Redis sorts these too).
            unsorted = false; o.alpha = true; o.by = nil
        }
        let total = zset?.count ?? elements.count
        let start = min(max(o.offset, 0), total)
        let count = min(max(o.count, -1), total)
        let end = count < 0 ? total : min(start + count, total)
        var window: Range<Int>
        if unsorted && (isList || zset != nil) {
            // Stored order, read from the far end for DESC, only the LIMIT's window.
            if let z = zset {
                elements = end > start ? z.range(ranks: start, end - 1, reverse: o.descending).map(\.0) : []
            } else {
                elements = Array((o.descending ? Array(elements.reversed()) : elements)[start..<end])
            }
            window = 0..<elements.count
        } else {
            if let z = zset { elements = z.pairs.map(\.0) }
            window = start..<max(start, end)
            if !unsorted { elements = try sorted(ctx, elements, o) }
        }
        var out: [Bytes?] = []
        for element in elements[window] {
            if o.gets.isEmpty { out.append(element) }
            for pattern in o.gets { out.append(lookup(ctx, pattern, element)) }
        }
        if let dst = o.store {
            let list = ListValue()
            for v in out { list.items.append(v ?? Bytes()) }
            storeResult(ctx, dst, out.isEmpty ? nil : .list(list), .list, "sortstore")
            ctx.reply.integer(out.count)
            return
        }
        ctx.reply.arrayHeader(out.count)
        for v in out { if let v { ctx.reply.bulk(v) } else { ctx.reply.null() } }
    }

    /// Orders `elements` by score, or with ALPHA by string; throws when a score is not a
    /// number, as Redis does once every element is loaded.
    static func sorted(_ ctx: CommandContext, _ elements: [Bytes], _ o: Options) throws(CommandError) -> [Bytes] {
        let sign = o.descending ? -1 : 1
        if o.alpha {
            let keys: [Bytes?] = elements.map { e in o.by.map { lookup(ctx, $0, e) } ?? e }
            let bytewise = o.store != nil
            let order = elements.indices.sorted { a, b in
                let c: Int
                switch (keys[a], keys[b]) {
                case (nil, nil): c = 0
                case (nil, _): c = -1
                case (_, nil): c = 1
                case let (x?, y?): c = bytewise ? compare(x, y) : compareUpToNul(x, y)
                }
                return c * sign < 0
            }
            return order.map { elements[$0] }
        }
        var scores: [Double] = []
        scores.reserveCapacity(elements.count)
        var bad = false
        for e in elements {
            let source = o.by == nil ? e : lookup(ctx, o.by!, e)
            guard let source else { scores.append(0); continue }
            if let d = score(source) { scores.append(d) } else { bad = true; scores.append(0) }
        }
        if bad { throw CommandError("ERR One or more scores can't be converted into double") }
        let order = elements.indices.sorted { a, b in
            let c = scores[a] > scores[b] ? 1 : scores[a] < scores[b] ? -1 : compare(elements[a], elements[b])
            return c * sign < 0
        }
        return order.map { elements[$0] }
    }

    /// A score as Redis reads it: strtod over the bytes up to the first NUL, all consumed,
    /// neither NaN nor out of range (ERANGE). An empty string is 0.
    static func score(_ b: Bytes) -> Double? {
        b.withUnsafeBytes { raw -> Double? in
            let n = raw.firstIndex(of: 0) ?? raw.count
            return withUnsafeTemporaryAllocation(of: CChar.self, capacity: n + 1) { buf -> Double? in
                for i in 0..<n { buf[i] = CChar(bitPattern: raw[i]) }
                buf[n] = 0
                var end: UnsafeMutablePointer<CChar>? = nil
                errno = 0
                let d = strtod(buf.baseAddress!, &end)
                guard end == buf.baseAddress! + n, errno != ERANGE, !d.isNaN else { return nil }
                return d
            }
        }
    }

    /// memcmp, then the shorter first.
    static func compare(_ a: Bytes, _ b: Bytes) -> Int { a < b ? -1 : (a == b ? 0 : 1) }

    /// strcmp: bytes up to the first NUL of either.
    static func compareUpToNul(_ a: Bytes, _ b: Bytes) -> Int {
        func cut(_ x: Bytes) -> Bytes {
            x.withUnsafeBytes { raw in raw.firstIndex(of: 0).map { x.slice(0..<$0) } ?? x }
        }
        return compare(cut(a), cut(b))
    }

    /// The value `pattern` names for `element`: `#` is the element; otherwise the first `*`
    /// becomes the element and names a string key, or with `->field` after the `*` a hash
    /// key and its field. Nil when there is no `*`, no such key, or a key of another type.
    static func lookup(_ ctx: CommandContext, _ pattern: Bytes, _ element: Bytes) -> Bytes? {
        let p = pattern.array
        if p == [UInt8(ascii: "#")] { return element }
        guard let star = p.firstIndex(of: UInt8(ascii: "*")) else { return nil }
        var keyEnd = p.count
        var field: Bytes?
        var i = star + 1
        while i + 1 < p.count {
            if p[i] == UInt8(ascii: "-") && p[i + 1] == UInt8(ascii: ">") {
                // "->" at the very end names no field and stays part of the key.
                if i + 2 < p.count { field = Bytes(p[(i + 2)...]); keyEnd = i }
                break
            }
            i += 1
        }
        let key = Bytes(p[..<star] + element.array + p[(star + 1)..<keyEnd])
        guard let e = ctx.lookup(key) else { return nil }
        switch (e.value, field) {
        case (.string(let s), nil): return s
        case (.hash(let h), let f?): return h[f]
        default: return nil
        }
    }
}
