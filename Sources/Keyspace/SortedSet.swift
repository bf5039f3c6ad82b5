import RESP

/// A sorted set: member -> score for O(1) lookups, plus a counted B+tree ordered by
/// (score, member) so that ranks and ranges cost O(log n + m).
///
/// Invariants: `scores` and the tree hold the same (member, score) pairs; no score is -0
/// unless `keepsSignedZero` (a -0 is stored as 0, which is what Redis's listpack reads back
/// for a small set: a reply that echoes the computed score, like ZINCRBY's, may still say -0).
public final class SortedSetValue {
    public private(set) var scores: [Bytes: Double] = [:]
    let tree = ScoreTree()

    /// Whether a -0 score stays -0. Redis converts a set for good from its listpack (which
    /// reads -0 back as 0) to its skiplist (which keeps the double) when an insert would
    /// pass zset-max-listpack-entries or -value (128 members, 64 bytes, the defaults this
    /// follows), or when SORT reads it; this flag is that conversion.
    public private(set) var keepsSignedZero = false
    static let listpackEntries = 128, listpackValue = 64

    public init() {}

    public var count: Int { scores.count }

    /// What SORT does to a sorted set in Redis: from now on -0 scores stay -0.
    public func convertForSort() { keepsSignedZero = true }

    /// A score as this set stores it.
    func stored(_ score: Double) -> Double { keepsSignedZero ? score : score + 0.0 }

    /// Redis's conversion check before a new member goes in.
    func noteNewMember(_ member: Bytes) {
        if !keepsSignedZero && (scores.count + 1 > Self.listpackEntries || member.count > Self.listpackValue) {
            keepsSignedZero = true
        }
    }

    public func copy() -> SortedSetValue {
        let c = SortedSetValue()
        c.keepsSignedZero = keepsSignedZero
        var node = tree.first
        while let n = node { c.insert(tree.member(n), tree.score(n)); node = tree.next(n) }
        return c
    }

    public func score(_ member: Bytes) -> Double? { scores[member] }

    /// Adds or updates; returns true when the member is new.
    @discardableResult
    public func insert(_ member: Bytes, _ score: Double) -> Bool {
        if let old = scores[member] {
            let score = stored(score)
            if old != score {
                tree.updateScore(old, score, member)
                scores[member] = score
            }
            return false
        }
        noteNewMember(member)
        let score = stored(score)
        scores[member] = score
        tree.insert(score, member)
        return true
    }

    /// A member `lookup` found: its score, and where the dictionary keeps it.
    public struct Found {
        public let score: Double
        let index: [Bytes: Double].Index
    }

    /// ZADD reads a member's score first (for NX/XX/GT/LT/INCR), then may update it; the
    /// update goes through the index found here instead of hashing the member again.
    public func lookup(_ member: Bytes) -> Found? {
        guard let i = scores.index(forKey: member) else { return nil }
        return Found(score: scores.values[i], index: i)
    }

    /// Moves a member `lookup` just found to `score`; nothing may change the set between.
    public func update(_ member: Bytes, _ found: Found, to score: Double) {
        let score = stored(score)
        guard found.score != score else { return }
        tree.updateScore(found.score, score, member)
        scores.values[found.index] = score
    }

    /// Adds a member the caller just found absent; saves `insert` a lookup.
    public func add(_ member: Bytes, _ score: Double) {
        noteNewMember(member)
        let score = stored(score)
        scores[member] = score
        tree.insert(score, member)
    }

    @discardableResult
    public func remove(_ member: Bytes) -> Bool {
        guard let s = scores.removeValue(forKey: member) else { return false }
        tree.delete(s, member)
        return true
    }

    /// 0-based rank in ascending order, or descending with `reverse`.
    public func rank(_ member: Bytes, reverse: Bool = false) -> Int? {
        guard let s = scores[member] else { return nil }
        let r = tree.rank(s, member) - 1
        return reverse ? count - 1 - r : r
    }

    /// The member at ascending 0-based `rank`, which must be below `count`.
    public func member(atRank rank: Int) -> Bytes { tree.member(tree.position(atRank: rank + 1)!) }

    /// Members at ascending 0-based ranks `start...end` (already clamped), in order, or
    /// in descending order when `reverse` (ranks then count from the top).
    public func range(ranks start: Int, _ end: Int, reverse: Bool) -> [(Bytes, Double)] {
        guard start <= end, start >= 0, end < count else { return [] }
        var out: [(Bytes, Double)] = []
        out.reserveCapacity(end - start + 1)
        if reverse {
            var node = tree.position(atRank: count - start)
            for _ in start...end {
                guard let n = node else { break }
                out.append((tree.member(n), tree.score(n))); node = tree.previous(n)
            }
        } else {
            var node = tree.position(atRank: start + 1)
            for _ in start...end {
                guard let n = node else { break }
                out.append((tree.member(n), tree.score(n))); node = tree.next(n)
            }
        }
        return out
    }

    /// Members with scores in `range`, skipping `offset` and taking at most `limit`
    /// (negative: all), ascending or descending.
    public func range(scores range: ScoreRange, reverse: Bool, offset: Int = 0, limit: Int = -1) -> [(Bytes, Double)] {
        var out: [(Bytes, Double)] = []
        var node = reverse ? tree.lastInRange(range) : tree.firstInRange(range)
        var skip = offset
        while let n = node, limit < 0 || out.count < limit {
            let score = tree.score(n)
            if reverse ? !range.satisfiesMin(score) : !range.satisfiesMax(score) { break }
            if skip > 0 { skip -= 1 } else { out.append((tree.member(n), score)) }
            node = reverse ? tree.previous(n) : tree.next(n)
        }
        return out
    }

    public func range(lex range: LexRange, reverse: Bool, offset: Int = 0, limit: Int = -1) -> [(Bytes, Double)] {
        var out: [(Bytes, Double)] = []
        var node = reverse ? tree.lastInLexRange(range) : tree.firstInLexRange(range)
        var skip = offset
        while let n = node, limit < 0 || out.count < limit {
            let member = tree.member(n)
            if reverse ? !range.satisfiesMin(member) : !range.satisfiesMax(member) { break }
            if skip > 0 { skip -= 1 } else { out.append((member, tree.score(n))) }
            node = reverse ? tree.previous(n) : tree.next(n)
        }
        return out
    }

    public func count(scores range: ScoreRange) -> Int {
        guard let first = tree.firstInRange(range), let last = tree.lastInRange(range) else { return 0 }
        return tree.rank(of: last) - tree.rank(of: first) + 1
    }

    public func count(lex range: LexRange) -> Int {
        if tree.length <= ScoreTree.linearLexLimit { return self.range(lex: range, reverse: false).count }
        guard let first = tree.firstInLexRange(range), let last = tree.lastInLexRange(range) else { return 0 }
        return tree.rank(of: last) - tree.rank(of: first) + 1
    }

    public var first: (Bytes, Double)? { tree.first.map { (tree.member($0), tree.score($0)) } }
    public var last: (Bytes, Double)? { tree.last.map { (tree.member($0), tree.score($0)) } }
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

    /// True when no member can satisfy both bounds: `min` above `max`, or equal with either
    /// exclusive ("-" and "+" count as exclusive, as in Redis).
    var isEmpty: Bool {
        func order(_ b: LexBound) -> (rank: Int, value: Bytes?, exclusive: Bool) {
            switch b {
            case .negativeInfinity: return (0, nil, true)
            case .positiveInfinity: return (2, nil, true)
            case .inclusive(let v): return (1, v, false)
            case .exclusive(let v): return (1, v, true)
            }
        }
        let lo = order(min), hi = order(max)
        if lo.rank != hi.rank { return lo.rank > hi.rank }
        if let a = lo.value, let b = hi.value, a != b { return a > b }
        return lo.exclusive || hi.exclusive
    }
}
