import RESP

/// A sorted set: member -> score for O(1) lookups, plus a skip list ordered by
/// (score, member) with span counts so that ranks and ranges cost O(log n + m).
///
/// Invariant: `scores` and the skip list hold the same (member, score) pairs; every
/// level's `span` is the number of level-0 steps its `forward` link jumps over.
public final class SortedSetValue {
    public private(set) var scores: [Bytes: Double] = [:]
    let list = SkipList()

    public init() {}

    public var count: Int { scores.count }

    public func copy() -> SortedSetValue {
        let c = SortedSetValue()
        var node = list.header.levels[0].forward
        while let n = node { c.insert(n.member, n.score); node = n.levels[0].forward }
        return c
    }

    public func score(_ member: Bytes) -> Double? { scores[member] }

    /// Adds or updates; returns true when the member is new.
    @discardableResult
    public func insert(_ member: Bytes, _ score: Double) -> Bool {
        if let old = scores[member] {
            if old != score {
                list.delete(old, member)
                list.insert(score, member)
                scores[member] = score
            }
            return false
        }
        scores[member] = score
        list.insert(score, member)
        return true
    }

    @discardableResult
    public func remove(_ member: Bytes) -> Bool {
        guard let s = scores.removeValue(forKey: member) else { return false }
        list.delete(s, member)
        return true
    }

    /// 0-based rank in ascending order, or descending with `reverse`.
    public func rank(_ member: Bytes, reverse: Bool = false) -> Int? {
        guard let s = scores[member] else { return nil }
        let r = list.rank(s, member) - 1
        return reverse ? count - 1 - r : r
    }

    /// Members at ascending 0-based ranks `start...end` (already clamped), in order, or
    /// in descending order when `reverse` (ranks then count from the top).
    public func range(ranks start: Int, _ end: Int, reverse: Bool) -> [(Bytes, Double)] {
        guard start <= end, start >= 0, end < count else { return [] }
        var out: [(Bytes, Double)] = []
        out.reserveCapacity(end - start + 1)
        if reverse {
            var node = list.node(atRank: count - start)
            for _ in start...end {
                guard let n = node else { break }
                out.append((n.member, n.score)); node = n.backward
            }
        } else {
            var node = list.node(atRank: start + 1)
            for _ in start...end {
                guard let n = node else { break }
                out.append((n.member, n.score)); node = n.levels[0].forward
            }
        }
        return out
    }

    /// Members with scores in `range`, skipping `offset` and taking at most `limit`
    /// (negative: all), ascending or descending.
    public func range(scores range: ScoreRange, reverse: Bool, offset: Int = 0, limit: Int = -1) -> [(Bytes, Double)] {
        var out: [(Bytes, Double)] = []
        var node = reverse ? list.lastInRange(range) : list.firstInRange(range)
        var skip = offset
        while let n = node, limit < 0 || out.count < limit {
            if reverse ? !range.satisfiesMin(n.score) : !range.satisfiesMax(n.score) { break }
            if skip > 0 { skip -= 1 } else { out.append((n.member, n.score)) }
            node = reverse ? n.backward : n.levels[0].forward
        }
        return out
    }

    public func range(lex range: LexRange, reverse: Bool, offset: Int = 0, limit: Int = -1) -> [(Bytes, Double)] {
        var out: [(Bytes, Double)] = []
        var node = reverse ? list.lastInLexRange(range) : list.firstInLexRange(range)
        var skip = offset
        while let n = node, limit < 0 || out.count < limit {
            if reverse ? !range.satisfiesMin(n.member) : !range.satisfiesMax(n.member) { break }
            if skip > 0 { skip -= 1 } else { out.append((n.member, n.score)) }
            node = reverse ? n.backward : n.levels[0].forward
        }
        return out
    }

    public func count(scores range: ScoreRange) -> Int {
        guard let first = list.firstInRange(range), let last = list.lastInRange(range) else { return 0 }
        return list.rank(last.score, last.member) - list.rank(first.score, first.member) + 1
    }

    public func count(lex range: LexRange) -> Int {
        guard let first = list.firstInLexRange(range), let last = list.lastInLexRange(range) else { return 0 }
        return list.rank(last.score, last.member) - list.rank(first.score, first.member) + 1
    }

    public var first: (Bytes, Double)? { list.header.levels[0].forward.map { ($0.member, $0.score) } }
    public var last: (Bytes, Double)? { list.tail.map { ($0.member, $0.score) } }
}

public struct ScoreRange {
    public var min: Double, max: Double
    public var minExclusive: Bool, maxExclusive: Bool

    public init(min: Double, max: Double, minExclusive: Bool = false, maxExclusive: Bool = false) {
        self.min = min; self.max = max; self.minExclusive = minExclusive; self.maxExclusive = maxExclusive
    }

    public func satisfiesMin(_ s: Double) -> Bool { minExclusive ? s > min : s >= min }
    public func satisfiesMax(_ s: Double) -> Bool { maxExclusive ? s < max : s <= max }
    var isEmpty: Bool { min > max || (min == max && (minExclusive || maxExclusive)) }
}

public enum LexBound {
    case negativeInfinity, positiveInfinity
    case inclusive(Bytes), exclusive(Bytes)
}

public struct LexRange {
    public var min: LexBound, max: LexBound
    public init(min: LexBound, max: LexBound) { self.min = min; self.max = max }

    public func satisfiesMin(_ m: Bytes) -> Bool {
        switch min {
        case .negativeInfinity: return true
        case .positiveInfinity: return false
        case .inclusive(let b): return m >= b
        case .exclusive(let b): return m > b
        }
    }

    public func satisfiesMax(_ m: Bytes) -> Bool {
        switch max {
        case .negativeInfinity: return false
        case .positiveInfinity: return true
        case .inclusive(let b): return m <= b
        case .exclusive(let b): return m < b
        }
    }
}

final class SkipNode {
    let member: Bytes
    let score: Double
    var backward: SkipNode?
    var levels: [SkipLevel]

    init(level: Int, score: Double, member: Bytes) {
        self.score = score
        self.member = member
        levels = Array(repeating: SkipLevel(), count: level)
    }
}

struct SkipLevel {
    var forward: SkipNode?
    var span = 0
}

final class SkipList {
    static let maxLevel = 32
    let header = SkipNode(level: SkipList.maxLevel, score: 0, member: Bytes())
    var tail: SkipNode?
    var length = 0
    var level = 1
    // Scratch space for insert/delete, kept to avoid two allocations per update. Safe
    // because a sorted set is only touched under its shard's lock.
    private var update: [SkipNode]
    private var rankScratch = [Int](repeating: 0, count: SkipList.maxLevel)

    init() {
        update = [SkipNode](repeating: header, count: SkipList.maxLevel)
    }

    deinit {
        // Unlink iteratively so a long list does not release recursively.
        var node = header.levels[0].forward
        for i in 0..<header.levels.count { header.levels[i].forward = nil }
        while let n = node {
            node = n.levels[0].forward
            for i in 0..<n.levels.count { n.levels[i].forward = nil }
            n.backward = nil
        }
    }

    /// xorshift64*: level choice needs speed, not secrecy (the system generator costs a
    /// getrandom syscall per call).
    private var seed = UInt64.random(in: 1...UInt64.max)

    private func randomLevel() -> Int {
        var level = 1
        while level < SkipList.maxLevel {
            seed ^= seed >> 12; seed ^= seed << 25; seed ^= seed >> 27
            if (seed &* 0x2545_F491_4F6C_DD1D) >> 62 != 0 { break }  // continue with p = 1/4
            level += 1
        }
        return level
    }

    @inline(__always)
    private static func precedes(_ n: SkipNode, _ score: Double, _ member: Bytes) -> Bool {
        n.score < score || (n.score == score && n.member < member)
    }

    func insert(_ score: Double, _ member: Bytes) {
        var x = header
        for i in stride(from: level - 1, through: 0, by: -1) {
            rankScratch[i] = i == level - 1 ? 0 : rankScratch[i + 1]
            while let f = x.levels[i].forward, SkipList.precedes(f, score, member) {
                rankScratch[i] += x.levels[i].span
                x = f
            }
            update[i] = x
        }
        let newLevel = randomLevel()
        if newLevel > level {
            for i in level..<newLevel {
                rankScratch[i] = 0
                update[i] = header
                update[i].levels[i].span = length
            }
            level = newLevel
        }
        let node = SkipNode(level: newLevel, score: score, member: member)
        for i in 0..<newLevel {
            node.levels[i].forward = update[i].levels[i].forward
            update[i].levels[i].forward = node
            node.levels[i].span = update[i].levels[i].span - (rankScratch[0] - rankScratch[i])
            update[i].levels[i].span = (rankScratch[0] - rankScratch[i]) + 1
        }
        if newLevel < level {
            for i in newLevel..<level { update[i].levels[i].span += 1 }
        }
        node.backward = update[0] === header ? nil : update[0]
        if let f = node.levels[0].forward { f.backward = node } else { tail = node }
        length += 1
    }

    @discardableResult
    func delete(_ score: Double, _ member: Bytes) -> Bool {
        var x = header
        for i in stride(from: level - 1, through: 0, by: -1) {
            while let f = x.levels[i].forward, SkipList.precedes(f, score, member) { x = f }
            update[i] = x
        }
        guard let target = x.levels[0].forward, target.score == score, target.member == member else { return false }
        for i in 0..<level {
            if update[i].levels[i].forward === target {
                update[i].levels[i].span += target.levels[i].span - 1
                update[i].levels[i].forward = target.levels[i].forward
            } else {
                update[i].levels[i].span -= 1
            }
        }
        if let f = target.levels[0].forward { f.backward = target.backward } else { tail = target.backward }
        while level > 1 && header.levels[level - 1].forward == nil { level -= 1 }
        length -= 1
        return true
    }

    /// 1-based rank of an element known to be present.
    func rank(_ score: Double, _ member: Bytes) -> Int {
        var rank = 0
        var x = header
        for i in stride(from: level - 1, through: 0, by: -1) {
            while let f = x.levels[i].forward,
                  f.score < score || (f.score == score && f.member <= member) {
                rank += x.levels[i].span
                x = f
            }
            if x !== header && x.member == member && x.score == score { return rank }
        }
        return 0
    }

    /// Node at 1-based rank.
    func node(atRank rank: Int) -> SkipNode? {
        var traversed = 0
        var x = header
        for i in stride(from: level - 1, through: 0, by: -1) {
            while let f = x.levels[i].forward, traversed + x.levels[i].span <= rank {
                traversed += x.levels[i].span
                x = f
            }
            if traversed == rank { return x === header ? nil : x }
        }
        return nil
    }

    func firstInRange(_ r: ScoreRange) -> SkipNode? {
        guard !r.isEmpty else { return nil }
        var x = header
        for i in stride(from: level - 1, through: 0, by: -1) {
            while let f = x.levels[i].forward, !r.satisfiesMin(f.score) { x = f }
        }
        guard let n = x.levels[0].forward, r.satisfiesMax(n.score) else { return nil }
        return n
    }

    func lastInRange(_ r: ScoreRange) -> SkipNode? {
        guard !r.isEmpty else { return nil }
        var x = header
        for i in stride(from: level - 1, through: 0, by: -1) {
            while let f = x.levels[i].forward, r.satisfiesMax(f.score) { x = f }
        }
        guard x !== header, r.satisfiesMin(x.score) else { return nil }
        return x
    }

    func firstInLexRange(_ r: LexRange) -> SkipNode? {
        var x = header
        for i in stride(from: level - 1, through: 0, by: -1) {
            while let f = x.levels[i].forward, !r.satisfiesMin(f.member) { x = f }
        }
        guard let n = x.levels[0].forward, r.satisfiesMax(n.member), r.satisfiesMin(n.member) else { return nil }
        return n
    }

    func lastInLexRange(_ r: LexRange) -> SkipNode? {
        var x = header
        for i in stride(from: level - 1, through: 0, by: -1) {
            while let f = x.levels[i].forward, r.satisfiesMax(f.member) { x = f }
        }
        guard x !== header, r.satisfiesMin(x.member), r.satisfiesMax(x.member) else { return nil }
        return x
    }
}
