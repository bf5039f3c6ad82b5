import RESP
#if canImport(Glibc)
import Glibc
#endif

/// A small sorted set's pairs packed in one byte buffer, as Redis packs a small sorted set
/// in a listpack: its number of pairs (PackedCount), then each pair in ascending
/// (score, member) order as its score and its member (length as LEB128, then the bytes).
///
/// A score that is a whole number below 2^53 in magnitude is written as the LEB128 of its
/// zigzag form shifted left once (scores 0...31 take one byte, as a listpack's small
/// integers do); any other score as the byte 1 and its eight bytes' bit pattern. A pair
/// of a five-byte member and a small score thus takes seven bytes, where the table and
/// tree of a large set hold some hundred and fifty.
///
/// Everything here is a linear walk, as it is over a listpack: the set stays packed only up
/// to zset-max-listpack-entries (128) members, so a walk touches a few cache lines.
///
/// Invariants: pairs ascend strictly by (score, member) and their number is the count in
/// the header; no score is -0 (written as a whole number it reads back as 0, which is what
/// Redis's listpack does to it too) and none is NaN.
struct PackedScores {
    private(set) var bytes: ByteBuffer

    static let header = PackedCount.size
    /// An empty buffer, shared: the first write copies it.
    nonisolated(unsafe) private static let empty = ByteBuffer([0, 0])

    init() { bytes = PackedScores.empty }

    var count: Int {
        PackedCount.read(bytes) {
            var n = 0, next = slot(at: PackedScores.header)
            while let s = next { n += 1; next = slot(at: s.end) }
            return n
        }
    }

    /// Where one pair sits and its score; valid until the buffer changes.
    struct Slot {
        let start: Int, memberStart: Int, end: Int
        let score: Double
    }

    /// The pair that starts at `offset`, nil at the end of the buffer.
    func slot(at offset: Int) -> Slot? {
        guard offset < bytes.count else { return nil }
        return bytes.withUnsafeBytes { raw in
            var i = offset
            let score = PackedScores.readScore(at: &i, in: raw)
            let n = PackedLength.read(at: &i, in: raw)
            return Slot(start: offset, memberStart: i, end: i + n, score: score)
        }
    }

    /// Every pair's slot, in order: for walks backwards and by rank.
    func slots() -> [Slot] {
        var out: [Slot] = []
        out.reserveCapacity(count)
        var next = slot(at: PackedScores.header)
        while let s = next { out.append(s); next = slot(at: s.end) }
        return out
    }

    func member(_ s: Slot) -> Bytes {
        bytes.withUnsafeBytes { Bytes(UnsafeRawBufferPointer(rebasing: $0[s.memberStart..<s.end])) }
    }

    /// The pair holding `member` and its 0-based rank.
    func find(_ member: Bytes) -> (slot: Slot, rank: Int)? {
        member.withUnsafeBytes { m in
            bytes.withUnsafeBytes { raw in
                var i = PackedScores.header, rank = 0
                while i < raw.count {
                    let start = i
                    PackedScores.skipScore(at: &i, in: raw)
                    let n = PackedLength.read(at: &i, in: raw)
                    if n == m.count && (n == 0 || memcmp(raw.baseAddress! + i, m.baseAddress!, n) == 0) {
                        var j = start
                        let score = PackedScores.readScore(at: &j, in: raw)
                        return (Slot(start: start, memberStart: i, end: i + n, score: score), rank)
                    }
                    i += n
                    rank += 1
                }
                return nil
            }
        }
    }

    /// Whether the pair in `s` comes before (score, member) in the set's order.
    func precedes(_ s: Slot, _ score: Double, _ member: Bytes) -> Bool {
        if s.score != score { return s.score < score }
        return bytes.withUnsafeBytes { raw in
            member.withUnsafeBytes { m in
                let n = s.end - s.memberStart, common = min(n, m.count)
                let c = common == 0 ? 0 : memcmp(raw.baseAddress! + s.memberStart, m.baseAddress!, common)
                return c != 0 ? c < 0 : n < m.count
            }
        }
    }

    /// Adds a pair whose member is not in the set, where its order puts it.
    mutating func insert(_ score: Double, _ member: Bytes) {
        var at = PackedScores.header
        while let s = slot(at: at), precedes(s, score, member) { at = s.end }
        var pair: [UInt8] = []
        pair.reserveCapacity(member.count + 11)
        PackedScores.appendScore(score, to: &pair)
        PackedLength.append(member.count, to: &pair)
        member.withUnsafeBytes { pair.append(contentsOf: $0) }
        bytes.reserveCapacity(bytes.count + pair.count)  // exactly: as a listpack, no spare room
        bytes.insert(contentsOf: pair, at: at)
        setCount(count + 1)
    }

    mutating func remove(_ s: Slot) {
        bytes.removeSubrange(s.start..<s.end)
        setCount(count - 1)
    }

    private mutating func setCount(_ n: Int) { PackedCount.write(n, to: &bytes) }

    // MARK: scores

    private static let exactIntegers = 9_007_199_254_740_992.0  // 2^53

    static func appendScore(_ score: Double, to out: inout [UInt8]) {
        if score.magnitude < exactIntegers, score == score.rounded(.towardZero) {
            let n = Int64(score)
            let zigzag = UInt64(bitPattern: (n << 1) ^ (n >> 63))
            PackedLength.append(UInt64(zigzag << 1), to: &out)
        } else {
            out.append(1)
            withUnsafeBytes(of: score.bitPattern.littleEndian) { out.append(contentsOf: $0) }
        }
    }

    private static func readScore(at i: inout Int, in raw: UnsafeRawBufferPointer) -> Double {
        let word = PackedLength.read64(at: &i, in: raw)
        if word == 1 {
            var bits: UInt64 = 0
            withUnsafeMutableBytes(of: &bits) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[i..<i + 8])) }
            i += 8
            return Double(bitPattern: UInt64(littleEndian: bits))
        }
        let zigzag = word >> 1
        return Double(Int64(bitPattern: zigzag >> 1) ^ -Int64(bitPattern: zigzag & 1))
    }

    private static func skipScore(at i: inout Int, in raw: UnsafeRawBufferPointer) {
        if raw[i] == 1 { i += 9; return }
        while raw[i] & 0x80 != 0 { i += 1 }
        i += 1
    }
}

/// The number of elements at the head of a packed buffer (HashFields, PackedScores): two
/// bytes, little-endian, as a listpack's header holds it; 65,535 means "too many to say,
/// count them", so a packed form allowed more elements (the *-max-listpack-entries
/// settings have no upper bound) still counts right, at the price of a walk.
enum PackedCount {
    static let size = 2
    private static let unknown = 0xFFFF

    static func read(_ b: ByteBuffer, counting: () -> Int) -> Int {
        let n = Int(b[0]) | Int(b[1]) << 8
        return n == unknown ? counting() : n
    }

    static func write(_ n: Int, to b: inout ByteBuffer) {
        let stored = min(n, unknown)
        b[0] = UInt8(truncatingIfNeeded: stored)
        b[1] = UInt8(truncatingIfNeeded: stored >> 8)
    }
}

/// Lengths and small numbers in the packed forms (HashFields, PackedScores): LEB128, seven
/// bits a byte, the high bit set on every byte but the last.
enum PackedLength {
    static func read(at offset: inout Int, in raw: UnsafeRawBufferPointer) -> Int {
        Int(truncatingIfNeeded: read64(at: &offset, in: raw))
    }

    static func read64(at offset: inout Int, in raw: UnsafeRawBufferPointer) -> UInt64 {
        var n: UInt64 = 0, shift: UInt64 = 0
        while true {
            let byte = raw[offset]
            offset += 1
            n |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return n }
            shift += 7
        }
    }

    static func append<Out: RangeReplaceableCollection<UInt8>>(_ n: Int, to out: inout Out) {
        append(UInt64(n), to: &out)
    }

    static func append<Out: RangeReplaceableCollection<UInt8>>(_ value: UInt64, to out: inout Out) {
        var n = value
        repeat {
            let low = UInt8(n & 0x7F)
            n >>= 7
            out.append(n == 0 ? low : low | 0x80)
        } while n != 0
    }
}
