import Keyspace
import RESP

/// Bitmaps: strings addressed by bit. Bit 0 is the most significant bit of the first byte,
/// as in Redis, so a bitmap reads the same through GET and GETRANGE. A missing key reads as
/// an endless run of zero bits; SETBIT grows the string with zero bytes to reach its bit.
///
/// Ranges (BITCOUNT, BITPOS) count in bytes or, with BIT, in bits; negative indexes count
/// from the end and are clamped the way Redis clamps them, which is why the range is first
/// resolved to inclusive bit positions (`BitRange`) and only then scanned.
enum BitmapCommands {
    static let specs: [CommandSpec] = [
        CommandSpec("setbit", arity: 4, flags: [.write, .denyOOM], keys: KeySpec(1, 1, 1), handler: setbit),
        CommandSpec("getbit", arity: 3, flags: [.readonly, .fast, .sharedRead], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            let offset = try bitOffset(ctx, 2)
            let s = try ctx.string(ctx.args[1])
            ctx.reply.integer(s.map { bit(of: $0, at: offset) } ?? 0)
        },
        CommandSpec("bitcount", arity: -2, flags: [.readonly, .sharedRead], keys: KeySpec(1, 1, 1), handler: bitcount),
        CommandSpec("bitpos", arity: -3, flags: [.readonly, .sharedRead], keys: KeySpec(1, 1, 1), handler: bitpos),
        CommandSpec("bitop", arity: -4, flags: [.write, .denyOOM], keys: KeySpec(2, -1, 1), handler: bitop),
    ]

    /// A bit offset as SETBIT and GETBIT take it: an integer from 0 to the last bit of a
    /// string of proto-max-bulk-len bytes.
    static func bitOffset(_ ctx: CommandContext, _ i: Int) throws(CommandError) -> Int {
        guard let n = Numbers.int(ctx.args[i]), n >= 0, n >> 3 < ctx.maxBulkLength else {
            throw CommandError("ERR bit offset is not an integer or out of range")
        }
        return n
    }

    static func bit(of s: Bytes, at offset: Int) -> Int {
        let byte = offset >> 3
        guard byte < s.count else { return 0 }
        return Int(s[byte] >> (7 - UInt8(offset & 7))) & 1
    }

    static func setbit(_ ctx: CommandContext) throws(CommandError) {
        let key = ctx.args[1]
        let offset = try bitOffset(ctx, 2)
        guard let value = Numbers.int(ctx.args[3]), value == 0 || value == 1 else {
            throw CommandError("ERR bit is not an integer or out of range")
        }
        let byte = offset >> 3, mask = UInt8(0x80) >> UInt8(offset & 7)
        let (old, changed) = try ctx.modifyString(key) { bytes -> (Int, Bool) in
            // A string created or grown is a change even when the bit stays 0, as in Redis.
            let grown = bytes.count <= byte
            bytes.padWithZeros(to: byte + 1)
            let old = bytes[byte] & mask != 0 ? 1 : 0
            if value == 1 { bytes[byte] |= mask } else { bytes[byte] &= ~mask }
            return (old, grown || old != value)
        }
        if changed { ctx.dirty += 1 }
        ctx.reply.integer(old)
    }

    /// Inclusive first and last bit positions of a BITCOUNT/BITPOS range; empty when
    /// `first > last`.
    struct BitRange {
        var first: Int, last: Int
        var isEmpty: Bool { first > last }
    }

    /// Resolves `start end` over a string of `length` bytes, in bytes or (`inBits`) bits:
    /// negative indexes count from the end, both are clamped to the string.
    static func resolve(start: Int, end: Int, length: Int, inBits: Bool) -> BitRange {
        let total = inBits ? length << 3 : length
        var s = start < 0 ? total + start : start
        var e = end < 0 ? total + end : end
        s = max(s, 0); e = max(e, 0)
        e = min(e, total - 1)
        // An empty range stays empty: a start past the end shifted into bits would wrap.
        if s > e { return BitRange(first: 1, last: 0) }
        return inBits ? BitRange(first: s, last: e) : BitRange(first: s << 3, last: (e << 3) | 7)
    }

    /// BYTE or BIT at argument `i`; true for BIT.
    static func unit(_ ctx: CommandContext, _ i: Int) throws(CommandError) -> Bool {
        if ctx.option(i, "bit") { return true }
        if ctx.option(i, "byte") { return false }
        throw .syntax
    }

    /// The optional `start [end [BYTE|BIT]]` of BITCOUNT (at 2) and BITPOS (at 3), read
    /// before the key is looked up, as Redis 8 and Valkey 8 do: a bad range is an error
    /// whether or not the key exists. Valkey's reading: the unit is checked before `end`.
    struct RangeArguments {
        var start: Int, end: Int?, inBits: Bool

        init?(_ ctx: CommandContext, at i: Int) throws(CommandError) {
            let argc = ctx.args.count
            guard argc > i else { return nil }
            guard argc <= i + 3 else { throw .syntax }
            start = try ctx.int(i)
            inBits = argc == i + 3 ? try BitmapCommands.unit(ctx, i + 2) : false
            end = argc >= i + 2 ? try ctx.int(i + 1) : nil
        }
    }

    static func bitcount(_ ctx: CommandContext) throws(CommandError) {
        // `BITCOUNT key start` (no end) counts to the end of the string, as Valkey 8 reads it.
        let args = try RangeArguments(ctx, at: 2)
        guard let s = try ctx.string(ctx.args[1]) else { ctx.reply.integer(0); return }
        var range = BitRange(first: 0, last: s.count * 8 - 1)
        if let args {
            let end = args.end ?? s.count - 1
            if args.start < 0 && end < 0 && args.start > end { ctx.reply.integer(0); return }
            range = resolve(start: args.start, end: end, length: s.count, inBits: args.inBits)
        }
        ctx.reply.integer(range.isEmpty ? 0 : s.withUnsafeBytes { countOnes($0, range) })
    }

    static func countOnes(_ raw: UnsafeRawBufferPointer, _ r: BitRange) -> Int {
        let firstByte = r.first >> 3, lastByte = r.last >> 3
        var n = 0
        var i = firstByte
        // Whole words first, then bytes; the edge bytes are masked to the range.
        while i + 8 <= lastByte + 1 {
            n += raw.loadUnaligned(fromByteOffset: i, as: UInt64.self).nonzeroBitCount
            i += 8
        }
        while i <= lastByte { n += raw[i].nonzeroBitCount; i += 1 }
        let beforeFirst = raw[firstByte] & ~(UInt8(0xFF) >> UInt8(r.first & 7))
        let afterLast = raw[lastByte] & (UInt8(0xFF) >> UInt8((r.last & 7) + 1))  // none when it is bit 7
        return n - beforeFirst.nonzeroBitCount - afterLast.nonzeroBitCount
    }

    static func bitpos(_ ctx: CommandContext) throws(CommandError) {
        guard let target = Numbers.int(ctx.args[2]) else { throw .notInteger }
        guard target == 0 || target == 1 else { throw CommandError("ERR The bit argument must be 1 or 0.") }
        let args = try RangeArguments(ctx, at: 3)
        // A missing key is all zero bits: the first 0 is bit 0 and there is no 1.
        guard let s = try ctx.string(ctx.args[1]) else { ctx.reply.integer(target == 1 ? -1 : 0); return }
        var range = BitRange(first: 0, last: s.count * 8 - 1)
        let endGiven = args?.end != nil
        if let args {
            let end = args.end ?? s.count - 1
            range = resolve(start: args.start, end: end, length: s.count, inBits: args.inBits)
        }
        guard !range.isEmpty else { ctx.reply.integer(-1); return }
        if let found = s.withUnsafeBytes({ firstBit(target, in: $0, range) }) {
            ctx.reply.integer(found)
        } else if target == 0 && !endGiven {
            // Without an explicit end the string continues with zero bits past its end.
            ctx.reply.integer(range.last + 1)
        } else {
            ctx.reply.integer(-1)
        }
    }

    static func firstBit(_ target: Int, in raw: UnsafeRawBufferPointer, _ r: BitRange) -> Int? {
        let skip: UInt8 = target == 1 ? 0 : 0xFF  // bytes without the bit sought
        var pos = r.first
        while pos <= r.last {
            if pos & 7 == 0 && pos + 7 <= r.last && raw[pos >> 3] == skip { pos += 8; continue }
            if Int(raw[pos >> 3] >> (7 - UInt8(pos & 7))) & 1 == target { return pos }
            pos += 1
        }
        return nil
    }

    enum Operation { case and, or, xor, not }

    static func bitop(_ ctx: CommandContext) throws(CommandError) {
        let op: Operation
        if ctx.option(1, "and") { op = .and }
        else if ctx.option(1, "or") { op = .or }
        else if ctx.option(1, "xor") { op = .xor }
        else if ctx.option(1, "not") { op = .not }
        else { throw .syntax }
        let dst = ctx.args[2]
        if op == .not && ctx.args.count != 4 {
            throw CommandError("ERR BITOP NOT must be called with a single source key.")
        }
        var sources: [Bytes] = []
        for i in 3..<ctx.args.count {
            sources.append(try ctx.string(ctx.args[i]) ?? Bytes())
        }
        let length = sources.map(\.count).max() ?? 0
        var out = [UInt8](repeating: 0, count: length)
        // A shorter source reads as zero bytes past its end.
        for (n, src) in sources.enumerated() {
            src.withUnsafeBytes { raw in
                for i in 0..<length {
                    let b = i < raw.count ? raw[i] : 0
                    switch op {
                    case .not: out[i] = ~b
                    case .and: out[i] = n == 0 ? b : out[i] & b
                    case .or: out[i] |= b
                    case .xor: out[i] ^= b
                    }
                }
            }
        }
        storeResult(ctx, dst, length == 0 ? nil : .string(Bytes(out)), .string, "set")
        ctx.reply.integer(length)
    }
}
