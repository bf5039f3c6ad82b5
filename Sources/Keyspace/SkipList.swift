import RESP

/// The ordered half of a sorted set: a skip list over (score, member) with span counts,
/// as Redis keeps it, stored flat in arrays.
///
/// Nodes are integer handles into parallel arrays rather than objects, because walking a
/// list of class instances retains and releases every node it passes, and those atomic
/// reference-count writes were most of ZADD's time. Handle 0 is the header.
///
/// Invariants:
/// - Node `n`'s levels are `links[base[n] ..< base[n] + height[n]]`; a link's `forward`
///   is a node handle or `none`, and its `span` counts the level-0 steps it jumps.
/// - `backward[n]` is the previous node at level 0, `none` for the first node.
/// - A deleted node's handle goes to `free[height - 1]`, keeping its link slots, so a
///   later node of the same height reuses both: storage never grows past the peak size.
final class SkipList {
    static let maxLevel = 32
    static let none: Int32 = -1

    struct Link {
        var forward: Int32 = SkipList.none
        var span: Int32 = 0
    }

    private var members: [Bytes] = [Bytes()]
    private var height: [UInt8] = [UInt8(SkipList.maxLevel)]
    // The arrays the walks read, as raw storage: reading a Swift array held by a class
    // retains and releases its buffer on each access, which is what walking must avoid.
    private var scores = RawColumn<Double>(0)
    private var backward = RawColumn<Int32>(SkipList.none)
    private var base = RawColumn<Int32>(0)
    private var links = RawColumn<Link>(Link(), count: SkipList.maxLevel)
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

    deinit {
        scores.deallocate()
        backward.deallocate()
        base.deallocate()
        links.deallocate()
    }

    // MARK: node access

    typealias Node = Int

    func member(_ n: Node) -> Bytes { members[n] }
    func score(_ n: Node) -> Double { scores[n] }
    var first: Node? { handle(links[0].forward) }
    var last: Node? { handle(tail) }
    func next(_ n: Node) -> Node? { handle(links[Int(base[n])].forward) }
    func previous(_ n: Node) -> Node? { handle(backward[n]) }

    @inline(__always) private func handle(_ h: Int32) -> Node? { h == SkipList.none ? nil : Int(h) }

    @inline(__always) private func link(_ n: Int32, _ i: Int) -> Int { Int(base[Int(n)]) + i }

    @inline(__always)
    private func precedes(_ n: Int32, _ score: Double, _ member: Bytes) -> Bool {
        let s = scores[Int(n)]
        return s < score || (s == score && members[Int(n)] < member)
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
        if let n = free[h - 1].popLast() {
            scores[Int(n)] = score
            members[Int(n)] = member
            let b = Int(base[Int(n)])
            for i in 0..<h { links[b + i] = Link() }
            return n
        }
        let n = Int32(scores.count)
        scores.append(score)
        members.append(member)
        backward.append(SkipList.none)
        base.append(Int32(links.count))
        height.append(UInt8(h))
        for _ in 0..<h { links.append(Link()) }
        return n
    }

    // MARK: updates

    func insert(_ score: Double, _ member: Bytes) {
        var x: Int32 = 0
        for i in stride(from: level - 1, through: 0, by: -1) {
            rankScratch[i] = i == level - 1 ? 0 : rankScratch[i + 1]
            while true {
                let l = links[link(x, i)]
                guard l.forward != SkipList.none, precedes(l.forward, score, member) else { break }
                rankScratch[i] += Int(l.span)
                x = l.forward
            }
            update[i] = x
        }
        let newLevel = randomLevel()
        if newLevel > level {
            for i in level..<newLevel {
                rankScratch[i] = 0
                update[i] = 0
                links[i].span = Int32(length)
            }
            level = newLevel
        }
        let node = allocate(height: newLevel, score: score, member: member)
        for i in 0..<newLevel {
            let u = link(update[i], i), own = link(node, i)
            links[own].forward = links[u].forward
            links[u].forward = node
            links[own].span = links[u].span - Int32(rankScratch[0] - rankScratch[i])
            links[u].span = Int32(rankScratch[0] - rankScratch[i]) + 1
        }
        if newLevel < level {
            for i in newLevel..<level { links[link(update[i], i)].span += 1 }
        }
        backward[Int(node)] = update[0] == 0 ? SkipList.none : update[0]
        let after = links[link(node, 0)].forward
        if after != SkipList.none { backward[Int(after)] = node } else { tail = node }
        length += 1
    }

    @discardableResult
    func delete(_ score: Double, _ member: Bytes) -> Bool {
        var x: Int32 = 0
        for i in stride(from: level - 1, through: 0, by: -1) {
            while true {
                let f = links[link(x, i)].forward
                guard f != SkipList.none, precedes(f, score, member) else { break }
                x = f
            }
            update[i] = x
        }
        let target = links[link(x, 0)].forward
        guard target != SkipList.none, scores[Int(target)] == score, members[Int(target)] == member else { return false }
        for i in 0..<level {
            let u = link(update[i], i)
            if links[u].forward == target {
                let t = links[link(target, i)]
                links[u].span += t.span - 1
                links[u].forward = t.forward
            } else {
                links[u].span -= 1
            }
        }
        let after = links[link(target, 0)].forward
        if after != SkipList.none { backward[Int(after)] = backward[Int(target)] } else { tail = backward[Int(target)] }
        while level > 1 && links[level - 1].forward == SkipList.none { level -= 1 }
        members[Int(target)] = Bytes()
        free[Int(height[Int(target)]) - 1].append(target)
        length -= 1
        return true
    }

    // MARK: queries

    /// 1-based rank of an element known to be present.
    func rank(_ score: Double, _ member: Bytes) -> Int {
        var rank = 0
        var x: Int32 = 0
        for i in stride(from: level - 1, through: 0, by: -1) {
            while true {
                let l = links[link(x, i)]
                guard l.forward != SkipList.none else { break }
                let s = scores[Int(l.forward)]
                guard s < score || (s == score && members[Int(l.forward)] <= member) else { break }
                rank += Int(l.span)
                x = l.forward
            }
            if x != 0 && scores[Int(x)] == score && members[Int(x)] == member { return rank }
        }
        return 0
    }

    func rank(of n: Node) -> Int { rank(scores[n], members[n]) }

    /// Node at 1-based rank.
    func node(atRank rank: Int) -> Node? {
        var traversed = 0
        var x: Int32 = 0
        for i in stride(from: level - 1, through: 0, by: -1) {
            while true {
                let l = links[link(x, i)]
                guard l.forward != SkipList.none, traversed + Int(l.span) <= rank else { break }
                traversed += Int(l.span)
                x = l.forward
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
                let f = links[link(x, i)].forward
                guard f != SkipList.none, before(f) else { break }
                x = f
            }
        }
        return x
    }

    func firstInRange(_ r: ScoreRange) -> Node? {
        guard !r.isEmpty else { return nil }
        let x = lastWhere { !r.satisfiesMin(self.scores[Int($0)]) }
        guard let n = handle(links[link(x, 0)].forward), r.satisfiesMax(scores[n]) else { return nil }
        return n
    }

    func lastInRange(_ r: ScoreRange) -> Node? {
        guard !r.isEmpty else { return nil }
        let x = lastWhere { r.satisfiesMax(self.scores[Int($0)]) }
        guard x != 0, r.satisfiesMin(scores[Int(x)]) else { return nil }
        return Int(x)
    }

    func firstInLexRange(_ r: LexRange) -> Node? {
        let x = lastWhere { !r.satisfiesMin(self.members[Int($0)]) }
        guard let n = handle(links[link(x, 0)].forward), r.satisfiesMax(members[n]), r.satisfiesMin(members[n]) else { return nil }
        return n
    }

    func lastInLexRange(_ r: LexRange) -> Node? {
        let x = lastWhere { r.satisfiesMax(self.members[Int($0)]) }
        guard x != 0, r.satisfiesMin(members[Int(x)]), r.satisfiesMax(members[Int(x)]) else { return nil }
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

    mutating func append(_ v: T) {
        if count == capacity {
            let bigger = UnsafeMutablePointer<T>.allocate(capacity: capacity * 2)
            bigger.moveInitialize(from: pointer, count: count)
            pointer.deallocate()
            pointer = bigger
            capacity *= 2
        }
        (pointer + count).initialize(to: v)
        count += 1
    }

    func deallocate() { pointer.deallocate() }
}
