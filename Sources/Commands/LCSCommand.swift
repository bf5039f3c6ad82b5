import Keyspace
import RESP

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN]: the longest common
/// subsequence of two strings (a missing key is the empty string), by the textbook dynamic
/// programming table, O(len1 * len2) time and 4 bytes per cell, refused when the table
/// would pass proto-max-bulk-len, as Redis does.
///
/// Which subsequence comes back when several are longest, and how IDX splits it into
/// ranges, follows from walking the table back from its last cell the way Redis walks it:
/// diagonally on equal bytes, otherwise towards the larger neighbour, left on a tie.
/// Ranges are reported from the ends of the strings towards their starts.
enum LCSCommand {
    static let spec = CommandSpec("lcs", arity: -3, flags: [.readonly, .sharedRead], keys: KeySpec(1, 2, 1), handler: run)

    struct Range { var a: ClosedRange<Int>, b: ClosedRange<Int> }

    static func run(_ ctx: CommandContext) throws(CommandError) {
        let ea = ctx.lookup(ctx.args[1]), eb = ctx.lookup(ctx.args[2])
        var strings: [Bytes] = []
        for e in [ea, eb] {
            guard let e else { strings.append(Bytes()); continue }
            guard case .string(let s) = e.value else { throw CommandError("ERR The specified keys must contain string values") }
            strings.append(s)
        }
        var getLength = false, getIndexes = false, withMatchLength = false, minimum = 0
        var j = 3
        while j < ctx.args.count {
            if ctx.option(j, "idx") { getIndexes = true }
            else if ctx.option(j, "len") { getLength = true }
            else if ctx.option(j, "withmatchlen") { withMatchLength = true }
            else if ctx.option(j, "minmatchlen") && j + 1 < ctx.args.count {
                minimum = max(0, try ctx.int(j + 1))
                j += 1
            } else { throw .syntax }
            j += 1
        }
        if getIndexes && getLength { throw CommandError("ERR If you want both the length and indexes, please just use IDX.") }
        let a = strings[0].array, b = strings[1].array
        let cells = (a.count + 1) * (b.count + 1)
        guard cells * 4 <= ctx.maxBulkLength else {
            throw CommandError("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len")
        }
        let table = lengths(a, b)
        let width = b.count + 1
        let total = Int(table[a.count * width + b.count])
        if getLength { ctx.reply.integer(total); return }
        let (common, ranges) = walk(a, b, table)
        guard getIndexes else { ctx.reply.bulk(Bytes(common)); return }
        let shown = ranges.filter { minimum == 0 || $0.a.count >= minimum }
        ctx.reply.mapHeader(2)
        ctx.reply.bulk(Bytes("matches"))
        ctx.reply.arrayHeader(shown.count)
        for r in shown {
            ctx.reply.arrayHeader(withMatchLength ? 3 : 2)
            for side in [r.a, r.b] {
                ctx.reply.arrayHeader(2)
                ctx.reply.integer(side.lowerBound)
                ctx.reply.integer(side.upperBound)
            }
            if withMatchLength { ctx.reply.integer(r.a.count) }
        }
        ctx.reply.bulk(Bytes("len"))
        ctx.reply.integer(total)
    }

    /// table[i * (b.count + 1) + j] = length of the LCS of a[..<i] and b[..<j].
    static func lengths(_ a: [UInt8], _ b: [UInt8]) -> [UInt32] {
        let width = b.count + 1
        var t = [UInt32](repeating: 0, count: (a.count + 1) * width)
        for i in 1..<(a.count + 1) {
            for j in 1..<width {
                t[i * width + j] = a[i - 1] == b[j - 1]
                    ? t[(i - 1) * width + j - 1] + 1
                    : max(t[(i - 1) * width + j], t[i * width + j - 1])
            }
        }
        return t
    }

    /// The subsequence and its runs of consecutive matches, from the last cell back.
    static func walk(_ a: [UInt8], _ b: [UInt8], _ t: [UInt32]) -> ([UInt8], [Range]) {
        let width = b.count + 1
        var common: [UInt8] = []
        var ranges: [Range] = []
        var run: Range?
        var i = a.count, j = b.count
        while i > 0 && j > 0 {
            if a[i - 1] == b[j - 1] {
                common.append(a[i - 1])
                if let r = run, r.a.lowerBound == i, r.b.lowerBound == j {
                    run = Range(a: (i - 1)...r.a.upperBound, b: (j - 1)...r.b.upperBound)
                } else {
                    if let r = run { ranges.append(r) }
                    run = Range(a: (i - 1)...(i - 1), b: (j - 1)...(j - 1))
                }
                i -= 1; j -= 1
            } else {
                if let r = run { ranges.append(r); run = nil }
                if t[(i - 1) * width + j] > t[i * width + j - 1] { i -= 1 } else { j -= 1 }
            }
        }
        if let r = run { ranges.append(r) }
        return (common.reversed(), ranges)
    }
}
