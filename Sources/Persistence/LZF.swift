/// LZF, the compression RDB files use for long strings (`rdbcompression yes`).
///
/// The format is a sequence of runs, each starting with a control byte: below 32 it is a
/// literal run of control+1 bytes; otherwise the top three bits are a match length
/// (7 = a further length byte follows) and the low five, with the next byte, a distance
/// back into the output (up to 8,192 bytes). A match copies length+2 bytes, possibly
/// overlapping what it copies.
public enum LZF {
    private static let maxLiteral = 32
    private static let maxOffset = 1 << 13
    private static let maxMatch = (1 << 8) + (1 << 3)  // 264
    /// The match table has up to 2^14 slots, fewer for a short input (a string of 100
    /// bytes does not need, and should not pay for clearing, 16,384 of them).
    private static let maxHashBits = 14

    /// Compresses `input`; nil when the result would not fit in `limit` bytes (RDB stores a
    /// string compressed only when that saves at least four bytes).
    public static func compress(_ input: UnsafeRawBufferPointer, limit: Int) -> [UInt8]? {
        let n = input.count
        guard n >= 4, limit > 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(limit)
        let hashBits = min(maxHashBits, max(6, Int.bitWidth - (n - 1).leadingZeroBitCount))
        var table = [Int](repeating: -1, count: 1 << hashBits)
        var literalStart = 0  // first byte not yet written
        var i = 0

        func hash(_ p: Int) -> Int {
            let v = UInt32(input[p]) << 16 | UInt32(input[p + 1]) << 8 | UInt32(input[p + 2])
            return Int((v &* 2_654_435_761) >> UInt32(32 - hashBits))
        }
        func flushLiterals(upTo end: Int) -> Bool {
            var s = literalStart
            while s < end {
                let run = min(maxLiteral, end - s)
                if out.count + 1 + run > limit { return false }
                out.append(UInt8(run - 1))
                for k in s..<(s + run) { out.append(input[k]) }
                s += run
            }
            literalStart = end
            return true
        }

        while i + 2 < n {
            let h = hash(i)
            let candidate = table[h]
            table[h] = i
            if candidate >= 0, i - candidate - 1 < maxOffset,
               input[candidate] == input[i], input[candidate + 1] == input[i + 1], input[candidate + 2] == input[i + 2] {
                var len = 3
                let most = min(maxMatch, n - i)
                while len < most && input[candidate + len] == input[i + len] { len += 1 }
                guard flushLiterals(upTo: i) else { return nil }
                let off = i - candidate - 1
                let l = len - 2
                if l < 7 {
                    if out.count + 2 > limit { return nil }
                    out.append(UInt8(l << 5 | off >> 8))
                } else {
                    if out.count + 3 > limit { return nil }
                    out.append(UInt8(7 << 5 | off >> 8))
                    out.append(UInt8(l - 7))
                }
                out.append(UInt8(off & 0xff))
                i += len
                literalStart = i
                // Index the bytes the match covered, so later matches can start inside it.
                var p = i - len + 1
                while p < i && p + 2 < n { table[hash(p)] = p; p += 1 }
            } else {
                i += 1
            }
        }
        guard flushLiterals(upTo: n) else { return nil }
        return out
    }

    /// Decompresses into exactly `length` bytes; nil when the data is damaged (a match
    /// reaching before the start, or a size other than `length`).
    public static func decompress(_ input: UnsafeRawBufferPointer, length: Int) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: length)
        var o = 0
        var i = 0
        let n = input.count
        let ok = out.withUnsafeMutableBufferPointer { dst -> Bool in
            while i < n {
                let ctrl = Int(input[i]); i += 1
                if ctrl < 32 {
                    let run = ctrl + 1
                    guard i + run <= n, o + run <= length else { return false }
                    for k in 0..<run { dst[o + k] = input[i + k] }
                    i += run; o += run
                } else {
                    var len = ctrl >> 5
                    if len == 7 {
                        guard i < n else { return false }
                        len += Int(input[i]); i += 1
                    }
                    guard i < n else { return false }
                    let ref = o - ((ctrl & 0x1f) << 8) - Int(input[i]) - 1
                    i += 1
                    len += 2
                    guard ref >= 0, o + len <= length else { return false }
                    for k in 0..<len { dst[o + k] = dst[ref + k] }
                    o += len
                }
            }
            return o == length
        }
        return ok ? out : nil
    }
}
