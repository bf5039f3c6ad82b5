import Keyspace
import RESP

/// BITFIELD and BITFIELD_RO: integers of 1 to 64 bits (signed `i1`...`i64`, unsigned
/// `u1`...`u63`) at any bit offset of a string, read and written most significant bit
/// first like the rest of the bitmap commands. An offset `#n` means the n-th field of that
/// width.
///
/// As in Redis, every operation is parsed before any runs, so a bad one changes nothing;
/// a write first grows the string to the farthest bit any write names (even one that then
/// fails on overflow). OVERFLOW applies to the SET and INCRBY after it: WRAP (two's
/// complement, the default), SAT (clamp to the type's range) or FAIL (reply null, write
/// nothing). SET replies with the old value, INCRBY with the new one. Overflow is decided
/// on exact sums (`Int128`), which is what Redis's checks amount to.
enum BitfieldCommand {
    static let specs: [CommandSpec] = [
        CommandSpec("bitfield", arity: -2, flags: [.write, .denyOOM], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            try run(ctx, readOnly: false)
        },
        CommandSpec("bitfield_ro", arity: -2, flags: [.readonly, .fast, .sharedRead], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            try run(ctx, readOnly: true)
        },
    ]

    enum Overflow { case wrap, sat, fail }
    enum Kind { case get, set, incrBy }

    struct Field {
        var signed: Bool
        var bits: Int
        var offset: Int
        var minimum: Int128 { signed ? -(Int128(1) << (bits - 1)) : 0 }
        var maximum: Int128 { signed ? (Int128(1) << (bits - 1)) - 1 : (Int128(1) << bits) - 1 }
    }

    struct Operation {
        var kind: Kind
        var field: Field
        var value: Int64 = 0
        var overflow: Overflow
    }

    static func run(_ ctx: CommandContext, readOnly: Bool) throws(CommandError) {
        let ops = try parse(ctx)
        let writes = ops.filter { $0.kind != .get }
        let key = ctx.args[1]
        guard !writes.isEmpty else {
            let s = try ctx.string(key) ?? Bytes()
            ctx.reply.arrayHeader(ops.count)
            s.withUnsafeBytes { raw in for op in ops { ctx.reply.integer(Int(read(raw, op.field))) } }
            return
        }
        if readOnly { throw CommandError("ERR BITFIELD_RO only supports the GET subcommand") }
        let farthest = writes.map { $0.field.offset + $0.field.bits - 1 }.max()!
        let neededBytes = farthest >> 3 + 1
        // A wrong type throws before the body runs, so before any reply; the growth stays
        // even if every write then fails on overflow.
        let changes = try ctx.modifyString(key) { bytes -> Int in
            // As in Redis, every write counts as a change when the string was created or
            // grown; otherwise only one that altered its field does.
            let grown = bytes.count < neededBytes
            bytes.padWithZeros(to: neededBytes)
            ctx.reply.arrayHeader(ops.count)
            return bytes.withUnsafeMutableBytes { raw -> Int in
                var changes = 0
                for op in ops {
                    let result = apply(op, raw)
                    reply(ctx, result?.reply)
                    if let result, op.kind != .get, grown || result.changed { changes += 1 }
                }
                return changes
            }
        }
        guard changes > 0 else { return }
        ctx.notify(.string, "setbit", key)
        ctx.dirty += changes
    }

    static func reply(_ ctx: CommandContext, _ value: Int128?) {
        if let value { ctx.reply.integer(Int(value)) } else { ctx.reply.null() }
    }

    /// Runs one operation on the grown string: its reply, and whether it changed the
    /// field; nil when FAIL refused it.
    static func apply(_ op: Operation, _ raw: UnsafeMutableRawBufferPointer) -> (reply: Int128, changed: Bool)? {
        let old = read(UnsafeRawBufferPointer(raw), op.field)
        switch op.kind {
        case .get:
            return (old, false)
        case .incrBy:
            guard let new = fit(old + Int128(op.value), op.field, op.overflow) else { return nil }
            write(raw, op.field, new)
            return (new, new != old)
        case .set:
            // An unsigned field takes the value's 64 bits as unsigned: -1 is 2^64-1.
            let wanted = op.field.signed ? Int128(op.value) : Int128(UInt64(bitPattern: op.value))
            guard let new = fit(wanted, op.field, op.overflow) else { return nil }
            write(raw, op.field, new)
            return (old, new != old)
        }
    }

    /// `value` brought into the field's range by the overflow policy; nil for FAIL.
    static func fit(_ value: Int128, _ f: Field, _ policy: Overflow) -> Int128? {
        if value >= f.minimum && value <= f.maximum { return value }
        switch policy {
        case .fail: return nil
        case .sat: return value > f.maximum ? f.maximum : f.minimum
        case .wrap:
            let modulus = Int128(1) << f.bits
            var low = value % modulus
            if low < 0 { low += modulus }
            return f.signed && low > f.maximum ? low - modulus : low
        }
    }

    /// The field's value; bytes past the end of the string read as zero.
    static func read(_ raw: UnsafeRawBufferPointer, _ f: Field) -> Int128 {
        var v: UInt64 = 0
        for i in 0..<f.bits {
            let bit = f.offset + i, byte = bit >> 3
            let set = byte < raw.count && raw[byte] & (0x80 >> UInt8(bit & 7)) != 0
            v = v << 1 | (set ? 1 : 0)
        }
        if f.signed && f.bits < 64 && v & (1 << (f.bits - 1)) != 0 { return Int128(v) - (Int128(1) << f.bits) }
        return f.signed ? Int128(Int64(bitPattern: v)) : Int128(v)
    }

    /// Stores the low `bits` bits of `value`; the string already reaches the field's end.
    static func write(_ raw: UnsafeMutableRawBufferPointer, _ f: Field, _ value: Int128) {
        let v = UInt64(truncatingIfNeeded: value)
        for i in 0..<f.bits {
            let bit = f.offset + i, mask = UInt8(0x80) >> UInt8(bit & 7)
            if (v >> UInt64(f.bits - 1 - i)) & 1 != 0 { raw[bit >> 3] |= mask } else { raw[bit >> 3] &= ~mask }
        }
    }

    /// Every operation, in order, with the errors Redis gives and in its order: the
    /// operation word and its argument count, the type, the offset, then SET's or INCRBY's
    /// integer.
    static func parse(_ ctx: CommandContext) throws(CommandError) -> [Operation] {
        var ops: [Operation] = []
        var overflow = Overflow.wrap
        var j = 2
        while j < ctx.args.count {
            let left = ctx.args.count - j - 1
            let kind: Kind
            if ctx.option(j, "get") && left >= 2 { kind = .get }
            else if ctx.option(j, "set") && left >= 3 { kind = .set }
            else if ctx.option(j, "incrby") && left >= 3 { kind = .incrBy }
            else if ctx.option(j, "overflow") && left >= 1 {
                if ctx.option(j + 1, "wrap") { overflow = .wrap }
                else if ctx.option(j + 1, "sat") { overflow = .sat }
                else if ctx.option(j + 1, "fail") { overflow = .fail }
                else { throw CommandError("ERR Invalid OVERFLOW type specified") }
                j += 2
                continue
            } else { throw .syntax }
            var field = try type(ctx.args[j + 1])
            field.offset = try offset(ctx, ctx.args[j + 2], bits: field.bits)
            var op = Operation(kind: kind, field: field, overflow: overflow)
            if kind != .get {
                guard let v = Numbers.int(ctx.args[j + 3]) else { throw .notInteger }
                op.value = Int64(v)
            }
            ops.append(op)
            j += kind == .get ? 3 : 4
        }
        return ops
    }

    static func type(_ b: Bytes) throws(CommandError) -> Field {
        let invalid = CommandError("ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.")
        guard b.count >= 2 else { throw invalid }
        let signed: Bool
        switch b[0] {
        case UInt8(ascii: "i"), UInt8(ascii: "I"): signed = true
        case UInt8(ascii: "u"), UInt8(ascii: "U"): signed = false
        default: throw invalid
        }
        guard let bits = Numbers.int(b.slice(1..<b.count)), bits >= 1, bits <= (signed ? 64 : 63) else { throw invalid }
        return Field(signed: signed, bits: bits, offset: 0)
    }

    /// A bit offset, or `#n` for the n-th field of `bits` bits.
    static func offset(_ ctx: CommandContext, _ b: Bytes, bits: Int) throws(CommandError) -> Int {
        let err = CommandError("ERR bit offset is not an integer or out of range")
        let byField = b.count > 0 && b[0] == UInt8(ascii: "#")
        guard var n = Numbers.int(byField ? b.slice(1..<b.count) : b) else { throw err }
        if byField {
            let (product, overflow) = n.multipliedReportingOverflow(by: bits)
            guard !overflow else { throw err }
            n = product
        }
        guard n >= 0, n >> 3 < ctx.maxBulkLength else { throw err }
        return n
    }
}
