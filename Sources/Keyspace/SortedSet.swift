import RESP

/// A sorted set. A small one is packed (PackedScores: one buffer of pairs in order, as
/// Redis's listpack); past zset-max-listpack-entries members, or once a member longer than
/// zset-max-listpack-value joins, it becomes for good a member -> score table for O(1)
/// lookups plus a counted B+tree ordered by (score, member) (ScoreTree) so that ranks and
/// ranges cost O(log n + m), as Redis converts a listpack to its skiplist one way.
///
/// Invariants: `form` is packed until the set converts, then indexed for good, and the
/// Index's table and tree hold the same pairs. A packed set stores -0 as 0 (what Redis's
/// listpack reads back for it: a reply that echoes the computed score, like ZINCRBY's,
/// may still say -0); the table and tree keep the double as it is.
///
/// A copy-on-write value of one word (as HashFields, and for the same reason: a small set
/// is one packed buffer, and a class around it would cost a third again), changed in place
/// through `Entry.modifySortedSet`. Copies share the buffer or the Index until one of them
/// changes; `copy()` is the deep copy COPY makes.
public struct SortedSetValue {
    private enum Form {
        case packed(PackedScores)
        case indexed(Index)
    }

    /// A converted set's member -> score table and ordered tree.
    private final class Index {
        var scores: [Bytes: Double] = [:]
        let tree = ScoreTree()

        /// A copy sharing nothing that changes (the table is copied on write anyway).
        func copied() -> Index {
            let c = Index()
            c.scores = scores
            var node = tree.first
            while let n = node { c.tree.insert(tree.score(n), tree.member(n)); node = tree.next(n) }
            return c
        }
    }

    private var form = Form.packed(PackedScores())

    private var packed: PackedScores {
        if case .packed(let p) = form { return p }
        return PackedScores()
    }

    private var index: Index? {
        if case .indexed(let i) = form { return i }
        return nil
    }

    private var tree: ScoreTree? { index?.tree }
    private var scores: [Bytes: Double] { index?.scores ?? [:] }

    /// Changes the packed pairs in place: the form lets go of the buffer meanwhile, so that
    /// the change does not copy it.
    private mutating func changePacked<R>(_ body: (inout PackedScores) -> R) -> R {
        guard case .packed(var p) = form else { preconditionFailure("the set is not packed") }
        form = .packed(PackedScores())
        defer { form = .packed(p) }
        return body(&p)
    }

    /// Changes the converted set's table and tree, after copying them if another value
    /// shares them.
    private mutating func changeIndex<R>(_ body: (Index) -> R) -> R {
        guard case .indexed(var i) = form else { preconditionFailure("the set is not converted") }
        form = .packed(PackedScores())  // so that `i` is the index's only reference
        if !isKnownUniquelyReferenced(&i) { i = i.copied() }
        defer { form = .indexed(i) }
        return body(i)
    }

    public init() {}

    /// A large set's table and tree (nil while packed).
    var indexObject: AnyObject? { index }

    /// A converted set's index when this value holds the only reference to it: what the
    /// lazy-free thread is handed (the value is left empty).
    mutating func takeIndexIfLast() -> AnyObject? {
        guard case .indexed(var i) = form else { return nil }
        form = .packed(PackedScores())
        return isKnownUniquelyReferenced(&i) ? i : nil
    }

    public var count: Int { tree == nil ? packed.count : scores.count }

    /// Whether the set is still packed (OBJECT ENCODING's listpack, else skiplist).
    public var isPacked: Bool { tree == nil }

    /// Redis's conversion from listpack to skiplist, done for good: when the set outgrows
    /// the packed limits, when SORT reads it (from then on -0 scores stay -0), and when a
    /// file holds more members than a packed set keeps.
    public mutating func convertToTree() {
        guard case .packed(let packed) = form else { return }
        let converted = Index()
        converted.scores.reserveCapacity(packed.count + 1)
        var next = packed.slot(at: PackedScores.header)
        while let s = next {
            let m = packed.member(s)
            converted.scores[m] = s.score
            converted.tree.insert(s.score, m)
            next = packed.slot(at: s.end)
        }
        form = .indexed(converted)
    }

    /// A score as this set stores it.
    private func stored(_ score: Double) -> Double { tree == nil ? score + 0.0 : score }

    /// Redis's conversion check before a new member goes in.
    private mutating func noteNewMember(_ member: Bytes) {
        guard tree == nil else { return }
        if packed.count + 1 > EncodingLimits.zsetEntries.load(ordering: .relaxed)
            || member.count > EncodingLimits.zsetValue.load(ordering: .relaxed) {
            convertToTree()
        }
    }

    public func copy() -> SortedSetValue {
        var c = SortedSetValue()
        switch form {
        case .packed: c.form = form
        case .indexed(let i): c.form = .indexed(i.copied())
        }
        return c
    }

    public func score(_ member: Bytes) -> Double? {
        tree == nil ? packed.find(member)?.slot.score : scores[member]
    }

    /// Adds or updates; returns true when the member is new.
    @discardableResult
    public mutating func insert(_ member: Bytes, _ score: Double) -> Bool {
        if let found = lookup(member) {
            update(member, found, to: score)
            return false
        }
        add(member, score)
        return true
    }

    /// A member `lookup` found: its score, and where the set keeps it.
    public struct Found {
        public let score: Double
        fileprivate let place: Place
    }

    fileprivate enum Place {
        case packed(PackedScores.Slot)
        case table([Bytes: Double].Index)
    }

    /// ZADD reads a member's score first (for NX/XX/GT/LT/INCR), then may update it; the
    /// update goes through the place found here instead of searching again.
    public func lookup(_ member: Bytes) -> Found? {
        if tree == nil {
            return packed.find(member).map { Found(score: $0.slot.score, place: .packed($0.slot)) }
        }
        guard let i = scores.index(forKey: member) else { return nil }
        return Found(score: scores.values[i], place: .table(i))
    }

    /// Moves a member `lookup` just found to `score`; nothing may change the set between.
    public mutating func update(_ member: Bytes, _ found: Found, to score: Double) {
        let score = stored(score)
        guard found.score != score else { return }
        switch found.place {
        case .packed(let slot):
            changePacked { $0.remove(slot); $0.insert(score, member) }
        case .table(let at):
            changeIndex { index in
                index.tree.updateScore(found.score, score, member)
                index.scores.values[at] = score
            }
        }
    }

    /// Adds a member the caller just found absent; saves `insert` a lookup.
    public mutating func add(_ member: Bytes, _ score: Double) {
        noteNewMember(member)
        let score = stored(score)
        if index != nil {
            changeIndex { index in
                index.scores[member] = score
                index.tree.insert(score, member)
            }
        } else {
            changePacked { $0.insert(score, member) }
        }
    }

    @discardableResult
    public mutating func remove(_ member: Bytes) -> Bool {
        guard tree != nil else {
            guard let found = packed.find(member) else { return false }
            changePacked { $0.remove(found.slot) }
            return true
        }
        guard scores[member] != nil else { return false }
        return changeIndex { index in
            guard let s = index.scores.removeValue(forKey: member) else { return false }
            index.tree.delete(s, member)
            return true
        }
    }

    /// 0-based rank in ascending order, or descending with `reverse`.
    public func rank(_ member: Bytes, reverse: Bool = false) -> Int? {
        let r: Int
        if let tree {
            guard let s = scores[member] else { return nil }
            r = tree.rank(s, member) - 1
        } else {
            guard let found = packed.find(member) else { return nil }
            r = found.rank
        }
        return reverse ? count - 1 - r : r
    }

    /// The member at ascending 0-based `rank`, which must be below `count`.
    public func member(atRank rank: Int) -> Bytes {
        guard let tree else { return packed.member(packed.slots()[rank]) }
        return tree.member(tree.position(atRank: rank + 1)!)
    }

    /// Every pair in ascending order.
    public var pairs: [(Bytes, Double)] { range(ranks: 0, count - 1, reverse: false) }

    /// The pairs as a member -> score table (ZUNION and friends).
    public var table: [Bytes: Double] {
        if tree != nil { return scores }
        var t: [Bytes: Double] = [:]
        t.reserveCapacity(count)
        for (m, s) in pairs { t[m] = s }
        return t
    }

    /// Heap bytes of the packed buffer or of the table (MEMORY USAGE); the tree aside.
    public var storageBytes: Int {
        tree == nil ? packed.bytes.storageBytes : 32 + (MemoryLayout<Bytes>.stride + 9) * scores.capacity
    }

    /// Members at ascending 0-based ranks `start...end` (already clamped), in order, or
    /// in descending order when `reverse` (ranks then count from the top).
    public func range(ranks start: Int, _ end: Int, reverse: Bool) -> [(Bytes, Double)] {
        guard start <= end, start >= 0, end < count else { return [] }
        var out: [(Bytes, Double)] = []
        out.reserveCapacity(end - start + 1)
        guard let tree else {
            let packed = self.packed
            if reverse {
                let slots = packed.slots()
                for r in start...end {
                    let s = slots[count - 1 - r]
                    out.append((packed.member(s), s.score))
                }
            } else {
                // Forward, the walk needs no table of slots (ZRANGE 0 -1, pairs).
                var next = packed.slot(at: PackedScores.header), rank = 0
                while let s = next, rank <= end {
                    if rank >= start { out.append((packed.member(s), s.score)) }
                    next = packed.slot(at: s.end)
                    rank += 1
                }
            }
            return out
        }
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
        var skip = offset
        guard let tree else {
            guard !range.isEmpty else { return [] }
            let slots = packed.slots()
            for s in reverse ? Array(slots.reversed()) : slots where limit < 0 || out.count < limit {
                guard range.satisfiesMin(s.score) && range.satisfiesMax(s.score) else {
                    if reverse ? !range.satisfiesMin(s.score) : !range.satisfiesMax(s.score) { break }
                    continue
                }
                if skip > 0 { skip -= 1 } else { out.append((packed.member(s), s.score)) }
            }
            return out
        }
        var node = reverse ? tree.lastInRange(range) : tree.firstInRange(range)
        while let n = node, limit < 0 || out.count < limit {
            let score = tree.score(n)
            if reverse ? !range.satisfiesMin(score) : !range.satisfiesMax(score) { break }
            if skip > 0 { skip -= 1 } else { out.append((tree.member(n), score)) }
            node = reverse ? tree.previous(n) : tree.next(n)
        }
        return out
    }

    /// Lex ranges are defined only over members of one score. Where scores differ, Redis
    /// answers what its encoding's walk finds, and so does each form here: the packed one
    /// (Redis's listpack) walks in (score, member) order from the first member past `min`
    /// (from the end: the last one below `max`) while members stay within the range; the
    /// tree (Redis's skiplist) searches for those ends.
    public func range(lex range: LexRange, reverse: Bool, offset: Int = 0, limit: Int = -1) -> [(Bytes, Double)] {
        var out: [(Bytes, Double)] = []
        var skip = offset
        guard let tree else {
            let pairs = self.pairs
            guard !range.isEmpty, let f = pairs.first, let l = pairs.last,
                  range.satisfiesMin(l.0), range.satisfiesMax(f.0) else { return [] }
            let walk = reverse ? Array(pairs.reversed()) : pairs
            guard let start = walk.firstIndex(where: { reverse ? range.satisfiesMax($0.0) : range.satisfiesMin($0.0) }),
                  range.satisfiesMin(walk[start].0), range.satisfiesMax(walk[start].0) else { return [] }
            for p in walk[start...] where limit < 0 || out.count < limit {
                if reverse ? !range.satisfiesMin(p.0) : !range.satisfiesMax(p.0) { break }
                if skip > 0 { skip -= 1 } else { out.append(p) }
            }
            return out
        }
        var node = reverse ? tree.lastInLexRange(range) : tree.firstInLexRange(range)
        while let n = node, limit < 0 || out.count < limit {
            let member = tree.member(n)
            if reverse ? !range.satisfiesMin(member) : !range.satisfiesMax(member) { break }
            if skip > 0 { skip -= 1 } else { out.append((member, tree.score(n))) }
            node = reverse ? tree.previous(n) : tree.next(n)
        }
        return out
    }

    public func count(scores range: ScoreRange) -> Int {
        guard let tree else {
            guard !range.isEmpty else { return 0 }
            return packed.slots().reduce(0) { $0 + (range.satisfiesMin($1.score) && range.satisfiesMax($1.score) ? 1 : 0) }
        }
        guard let first = tree.firstInRange(range), let last = tree.lastInRange(range) else { return 0 }
        return tree.rank(of: last) - tree.rank(of: first) + 1
    }

    public func count(lex range: LexRange) -> Int {
        guard let tree else { return self.range(lex: range, reverse: false).count }
        guard let first = tree.firstInLexRange(range), let last = tree.lastInLexRange(range) else { return 0 }
        return tree.rank(of: last) - tree.rank(of: first) + 1
    }

    public var first: (Bytes, Double)? {
        guard let tree else { return packed.slot(at: PackedScores.header).map { (packed.member($0), $0.score) } }
        return tree.first.map { (tree.member($0), tree.score($0)) }
    }

    public var last: (Bytes, Double)? {
        guard let tree else { return packed.slots().last.map { (packed.member($0), $0.score) } }
        return tree.last.map { (tree.member($0), tree.score($0)) }
    }

    /// The tree's invariants, for tests; nil when the set is packed or they hold.
    func brokenTreeInvariant() -> String? { tree?.brokenInvariant() }
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
