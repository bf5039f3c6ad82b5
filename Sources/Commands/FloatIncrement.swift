import CLongDouble
import Keyspace
import RESP

/// INCRBYFLOAT and HINCRBYFLOAT, which Redis computes in long double and prints with 17
/// decimals, trailing zeros dropped: so `0.1 + 0.2` is stored as "0.3", and integers up
/// to 2^64 keep every digit. The arithmetic lives in CLongDouble; this side sees text.
enum FloatIncrement {
    enum Kind { case invalid, finite, infinite }

    static func kind(_ text: Bytes) -> Kind {
        let k = text.withUnsafeBytes { raw in
            berth_long_double_parse(raw.baseAddress?.assumingMemoryBound(to: CChar.self), raw.count)
        }
        switch k {
        case BERTH_LD_FINITE: return .finite
        case BERTH_LD_INFINITE: return .infinite
        default: return .invalid
        }
    }

    /// The sum's text, or nil when it is NaN or infinite. Both operands must parse.
    static func sum(_ a: Bytes, _ b: Bytes) -> Bytes? {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: Int(BERTH_LD_MAX_CHARS)) { out -> Bytes? in
            let n = a.withUnsafeBytes { x in
                b.withUnsafeBytes { y in
                    berth_long_double_add(x.baseAddress?.assumingMemoryBound(to: CChar.self), x.count,
                                          y.baseAddress?.assumingMemoryBound(to: CChar.self), y.count,
                                          out.baseAddress, out.count)
                }
            }
            guard n >= 0 else { return nil }
            return Bytes(UnsafeRawBufferPointer(start: out.baseAddress, count: n))
        }
    }

    static func incrByFloat(_ ctx: CommandContext) throws(CommandError) {
        let key = ctx.args[1], by = ctx.args[2]
        // The type, then the stored value, then the increment: the order of Redis's checks.
        let stored = try ctx.string(key)
        let current = stored ?? Bytes("0")
        guard kind(current) != .invalid, kind(by) != .invalid else { throw .notFloat }
        guard let text = sum(current, by) else { throw .nanOrInfinity }
        ctx.db(key).overwrite(key, .string(text), now: ctx.now, keepTTL: true)
        ctx.dirty += 1
        ctx.reply.bulk(text)
    }

    static func hincrByFloat(_ ctx: CommandContext) throws(CommandError) {
        let field = ctx.args[2], by = ctx.args[3]
        switch kind(by) {
        case .invalid: throw .notFloat
        case .infinite: throw CommandError("ERR value is NaN or Infinity")
        case .finite: break
        }
        let text = try ctx.modifyHash(ctx.args[1]) { (h) throws(CommandError) -> Bytes in
            let current = h[field] ?? Bytes("0")
            guard kind(current) != .invalid else { throw CommandError("ERR hash value is not a float") }
            guard let text = sum(current, by) else { throw .nanOrInfinity }
            h[field] = text
            return text
        }
        ctx.dirty += 1
        ctx.reply.bulk(text)
    }
}
