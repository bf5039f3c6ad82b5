import RESP

/// The ordered half of a sorted set: a skip list over (score, member) with span counts,
/// as Redis keeps it, stored flat in one arena of 8-byte slots.
///
/// Nodes are offsets into the arena rather than objects, because walking a list of class
/// instances retains and releases every node it passes. Each node is one contiguous
/// record, so a step of a walk costs one cache miss, as with Redis's node structs: the
/// record's score, then its links, sit side by side.
///
/// Record layout at offset `r` (the header is the record at offset 0, with `maxLevel`
/// links): `slots[r]` is the score's bit pattern; `slots[r + 1]` holds the backward
/// record offset (low 32 bits) and the node's id (high 32 bits); `slots[r + 2 + i]` is
/// level `i`'s link, forward offset (low 32 bits, `none` for the end) and span (high 32
/// bits, the number of level-0 steps the link jumps).
///
/// Invariants:
/// - A node's id indexes `members` and `heights`, the cold data that walks touch only
///   when two scores are equal or a node is freed.
/// - The backward offset of the first node is `none`.
/// - A deleted node's record goes to `free[height - 1]`, keeping its id and its link
///   slots, so a later node of the same height reuses both: the arena never grows past
///   the peak size.
final class SkipList {
    static let maxLevel = 32
    static let none: Int32 = -1

    private var slots = RawColumn<UInt64>(0, count: 2 + SkipList.maxLevel)
    private var members: [Bytes] = [Bytes()]
    private var heights: [UInt8] = [UInt8(SkipList.maxLevel)]
    private var free = [[Int32]](repeating: [], count: SkipList.maxLevel)
    private var tail = SkipList.none
    private(set) var length = 0
    private var level = 1
    // Scratch for insert/delete: safe to share because a sorted set is only touched under
    // its shard's lock.
    private var update = [Int32](repeating: 0, count: SkipList.maxLevel)
    private var rankScratch = [Int](repeating: 0, count: SkipList.maxLevel)
    /// xorshift64*: level choice needs speed, not secrecy.
    private var seed = UInt64.random(in: 1...UInt64.max)

    init() {
        for i in 0..<SkipList.maxLevel { setLink(0, i, forward: SkipList.none, span: 0) }
        setMeta(0, backward: SkipList.none, id: 0)
    }

    deinit { slots.deallocate() }

    // MARK: record access

    typealias Node = Int

    @inline(__always) private func score(_ r: Int32) -> Double { Double(bitPattern: slots[Int(r)]) }
    @inline(__always) private func backward(_ r: Int32) -> Int32 { Int32(truncatingIfNeeded: slots[Int(r) + 1]) }
    @inline(__always) private func id(_ r: Int32) -> Int { Int(slots[Int(r) + 1] >> 32) }
    @inline(__always) private func forward(_ r: Int32, _ i: Int) -> Int32 {
        Int32(truncatingIfNeeded: slots[Int(r) + 2 + i])
    }
    @inline(__always) private func span(_ r: Int32, _ i: Int) -> Int32 {
        Int32(truncatingIfNeeded: slots[Int(r) + 2 + i] >> 32)
    }
    @inline(__always) private func setScore(_ r: Int32, _ s: Double) { slots[Int(r)] = s.bitPattern }
    @inline(__always) private func setMeta(_ r: Int32, backward: Int32, id: Int) {
        slots[Int(r) + 1] = UInt64(UInt32(bitPattern: backward)) | UInt64(id) << 32
    }
    @inline(__always) private func setBackward(_ r: Int32, _ b: Int32) { setMeta(r, backward: b, id: id(r)) }
    @inline(__always) private func setLink(_ r: Int32, _ i: Int, forward: Int32, span: Int32) {
        slots[Int(r) + 2 + i] = UInt64(UInt32(bitPattern: forward)) | UInt64(UInt32(bitPattern: span)) << 32
    }
    @inline(__always) private func setForward(_ r: Int32, _ i: Int, _ f: Int32) { setLink(r, i, forward: f, span: span(r, i)) }
    @inline(__always) private func setSpan(_ r: Int32, _ i: Int, _ s: Int32) { setLink(r, i, forward: forward(r, i), span: s) }

    func member(_ n: Node) -> Bytes { members[id(Int32(n))] }
    func score(_ n: Node) -> Double { score(Int32(n)) }
    var first: Node? { handle(forward(0, 0)) }
    var last: Node? { handle(tail) }
    func next(_ n: Node) -> Node? { handle(forward(Int32(n), 0)) }
    func previous(_ n: Node) -> Node? { handle(backward(Int32(n))) }

    @inline(__always) private func handle(_ h: Int32) -> Node? { h == SkipList.none ? nil : Int(h) }
    @inline(__always) private func member(_ r: Int32) -> Bytes { members[id(r)] }

    @inline(__always)
    private func precedes(_ n: Int32, _ score: Double, _ member: Bytes) -> Bool {
        let s = self.score(n)
        return s < score || (s == score && self.member(n) < member)
    }

    private func randomLevel() -> Int {
        var level = 1
        while level < SkipList.maxLevel {
            seed ^= seed >> 12; seed ^= seed << 25; seed ^= seed >> 27
            if (seed &* 0x2545_F491_4F6C_DD1D) >> 62 != 0 { break }  // go on with p = 1/4
            level += 1
        }
        return level
    }

    private func allocate(height h: Int, score: Double, member: Bytes) -> Int32 {
        let r: Int32
        if let reused = free[h - 1].popLast() {
            r = reused
            members[id(r)] = member
        } else {
            r = Int32(slots.count)
            slots.append(0, count: 2 + h)
            setMeta(r, backward: SkipList.none, id: members.count)
            members.append(member)
            heights.append(UInt8(h))
        }
        setScore(r, score)
        for i in 0..<h { setLink(r, i, forward: SkipList.none, span: 0) }
        return r
    }

    // MARK: updates

    func insert(_ score: Double, _ member: Bytes) {
        var x: Int32 = 0
        for i in stride(from: level - 1, through: 0, by: -1) {
            rankScratch[i] = i == level - 1 ? 0 : rankScratch[i + 1]
            while true {
                let f = forward(x, i)
                guard f != SkipList.none, precedes(f, score, member) else { break }
                rankScratch[i] += Int(span(x, i))
                x = f
            }
            update[i] = x
        }
        let newLevel = randomLevel()
        if newLevel > level {
            for i in level..<newLevel {
                rankScratch[i] = 0
                update[i] = 0
                setSpan(0, i, Int32(length))
            }
            level = newLevel
        }
        let node = allocate(height: newLevel, score: score, member: member)
        for i in 0..<newLevel {
            let u = update[i]
            let jumped = Int32(rankScratch[0] - rankScratch[i])
            setLink(node, i, forward: forward(u, i), span: span(u, i) - jumped)
            setLink(u, i, forward: node, span: jumped + 1)
        }
        if newLevel < level {
            for i in newLevel..<level { setSpan(update[i], i, span(update[i], i) + 1) }
        }
        setBackward(node, update[0] == 0 ? SkipList.none : update[0])
        let after = forward(node, 0)
        if after != SkipList.none { setBackward(after, node) } else { tail = node }
        length += 1
    }

    @discardableResult
    func delete(_ score: Double, _ member: Bytes) -> Bool {
        guard let target = find(score, member) else { return false }
        remove(target)
        return true
    }

    /// Unlinks the node that `find` just located and puts its record on the free list.
    private func remove(_ target: Int32) {
        unlink(target)
        members[id(target)] = Bytes()
        free[Int(heights[id(target)]) - 1].append(target)
        length -= 1
    }

    /// Moves `member` from `old` to `new` score. When the node's neighbours still bracket
    /// the new score it stays where it is and only its score changes, as Redis does.
    func updateScore(_ old: Double, _ new: Double, _ member: Bytes) {
        guard let target = find(old, member) else { return }
        let before = backward(target), after = forward(target, 0)
        if (before == SkipList.none || precedes(before, new, member))
            && (after == SkipList.none || !precedes(after, new, member)) {
            setScore(target, new)
            return
        }
        remove(target)
        insert(new, member)
    }

    /// Finds the node holding (score, member), leaving each level's last node before it
    /// in `update`.
    private func find(_ score: Double, _ member: Bytes) -> Int32? {
        var x: Int32 = 0
        for i in stride(from: level - 1, through: 0, by: -1) {
            while true {
                let f = forward(x, i)
                guard f != SkipList.none, precedes(f, score, member) else { break }
                x = f
            }
            update[i] = x
        }
        let target = forward(x, 0)
        guard target != SkipList.none, self.score(target) == score, self.member(target) == member else { return nil }
        return target
    }

    /// Takes the node that `find` just located out of every level.
    private func unlink(_ target: Int32) {
        for i in 0..<level {
            let u = update[i]
            if forward(u, i) == target {
                setLink(u, i, forward: forward(target, i), span: span(u, i) + span(target, i) - 1)
            } else {
                setSpan(u, i, span(u, i) - 1)
            }
        }
        let after = forward(target, 0)
        if after != SkipList.none { setBackward(after, backward(target)) } else { tail = backward(target) }
        while level > 1 && forward(0, level - 1) == SkipList.none { level -= 1 }
    }

    // MARK: queries

    /// 1-based rank of an element known to be present.
    func rank(_ score: Double, _ member: Bytes) -> Int {
        var rank = 0
        var x: Int32 = 0
        for i in stride(from: level - 1, through: 0, by: -1) {
            while true {
                let f = forward(x, i)
                guard f != SkipList.none else { break }
                let s = self.score(f)
                guard s < score || (s == score && self.member(f) <= member) else { break }
                rank += Int(span(x, i))
                x = f
            }
            if x != 0 && self.score(x) == score && self.member(x) == member { return rank }
        }
        return 0
    }

    func rank(of n: Node) -> Int { rank(score(n), member(n)) }

    /// Node at 1-based rank.
    func node(atRank rank: Int) -> Node? {
        var traversed = 0
        var x: Int32 = 0
        for i in stride(from: level - 1, through: 0, by: -1) {
            while true {
                let f = forward(x, i)
                guard f != SkipList.none, traversed + Int(span(x, i)) <= rank else { break }
                traversed += Int(span(x, i))
                x = f
            }
            if traversed == rank { return x == 0 ? nil : Int(x) }
        }
        return nil
    }

    /// The last node (from the header) for which `before` holds, descending every level.
    private func lastWhere(_ before: (Int32) -> Bool) -> Int32 {
        var x: Int32 = 0
        for i in stride(from: level - 1, through: 0, by: -1) {
            while true {
                let f = forward(x, i)
                guard f != SkipList.none, before(f) else { break }
                x = f
            }
        }
        return x
    }

    func firstInRange(_ r: ScoreRange) -> Node? {
        guard !r.isEmpty else { return nil }
        let x = lastWhere { !r.satisfiesMin(self.score($0)) }
        guard let n = handle(forward(x, 0)), r.satisfiesMax(score(n)) else { return nil }
        return n
    }

    func lastInRange(_ r: ScoreRange) -> Node? {
        guard !r.isEmpty else { return nil }
        let x = lastWhere { r.satisfiesMax(self.score($0)) }
        guard x != 0, r.satisfiesMin(score(x)) else { return nil }
        return Int(x)
    }

    func firstInLexRange(_ r: LexRange) -> Node? {
        let x = lastWhere { !r.satisfiesMin(self.member($0)) }
        guard let n = handle(forward(x, 0)), r.satisfiesMax(member(n)), r.satisfiesMin(member(n)) else { return nil }
        return n
    }

    func lastInLexRange(_ r: LexRange) -> Node? {
        let x = lastWhere { r.satisfiesMax(self.member($0)) }
        guard x != 0, r.satisfiesMin(member(x)), r.satisfiesMax(member(x)) else { return nil }
        return Int(x)
    }
}

/// A growable array of trivial values in memory the skip list owns and frees itself, so
/// that reading an element is a plain load.
struct RawColumn<T> {
    private var pointer: UnsafeMutablePointer<T>
    private var capacity: Int
    private(set) var count: Int

    init(_ first: T, count: Int = 1) {
        capacity = Swift.max(16, count)
        pointer = .allocate(capacity: capacity)
        pointer.initialize(repeating: first, count: count)
        self.count = count
    }

    subscript(i: Int) -> T {
        @inline(__always) get { pointer[i] }
        @inline(__always) nonmutating set { pointer[i] = newValue }
    }

    /// Appends `count` copies of `v` with at most one reallocation.
    mutating func append(_ v: T, count n: Int) {
        if count + n > capacity {
            var grown = capacity * 2
            while grown < count + n { grown *= 2 }
            let bigger = UnsafeMutablePointer<T>.allocate(capacity: grown)
            bigger.moveInitialize(from: pointer, count: count)
            pointer.deallocate()
            pointer = bigger
            capacity = grown
        }
        (pointer + count).initialize(repeating: v, count: n)
        count += n
    }

    func deallocate() { pointer.deallocate() }
}
