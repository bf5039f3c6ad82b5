import RESP

/// The ordered half of a sorted set: a B+tree over (score, member) pairs whose inner nodes
/// count the pairs under each child, so that ranks and ranges cost O(log n + m).
///
/// Why not Redis's skip list: a skip list lookup follows a few dozen links to nodes spread
/// over memory, nearly each a cache miss once the set outgrows the cache. Here a leaf keeps
/// up to 64 scores side by side and the few inner nodes above the leaves stay in cache, so
/// a lookup or an update costs a handful of misses in one leaf. Updates move at most a
/// leaf's worth of pairs, which is cheaper than the misses it saves.
///
/// One node type serves both roles. A leaf has no children; its `scores`/`members` are its
/// pairs. An inner node's `scores`/`members` at index i > 0 are the separator of child i,
/// and `counts[i]` is the number of pairs under child i; index 0's separator is unused.
///
/// Invariants:
/// - Pairs are unique and ascend strictly by (score, member) along the chain of leaves,
///   which `next`/`previous` link in order from `head` to `tail`; all leaves sit at the same
///   depth.
/// - In an inner node, child i-1's pairs are all below separator i, and child i's pairs are
///   all at or above it.
/// - A leaf other than the root holds `leafMinimum...capacity` pairs; an inner node other
///   than the root holds `innerMinimum...capacity` children; an inner root has at least two.
/// - Leaves are owned only by their parent's `children`; the leaf links are unowned, so that
///   freeing a long chain never recurses through it.
final class ScoreTree {
    static let capacity = 64
    static let leafMinimum = 16
    static let innerMinimum = 8

    final class Node {
        var scores: [Double] = []
        var members: [Bytes] = []
        var children: [Node] = []
        var counts: [Int] = []
        unowned(unsafe) var next: Node?
        unowned(unsafe) var previous: Node?

        var isLeaf: Bool { children.isEmpty }
        /// Pairs in a leaf, children in an inner node.
        var size: Int { isLeaf ? scores.count : children.count }
        var isUnderfull: Bool { isLeaf ? scores.count < ScoreTree.leafMinimum : children.count < ScoreTree.innerMinimum }

        /// In a leaf: the index of the first pair at or above (score, member).
        @inline(__always)
        func lowerBound(_ score: Double, _ member: Bytes) -> Int {
            partition(from: 0) { ScoreTree.precedes($0, $1, score, member) }
        }

        /// In an inner node: the child whose range holds (score, member).
        @inline(__always)
        func childIndex(_ score: Double, _ member: Bytes) -> Int {
            partition(from: 1) { !ScoreTree.precedes(score, member, $0, $1) } - 1
        }

        /// The first index at or after `start` whose entry fails `before`, which holds on a
        /// prefix of the entries. Reads through buffer pointers: indexing the arrays in
        /// the loop would retain and release their storage at every step.
        @inline(__always)
        func partition(from start: Int, _ before: (Double, Bytes) -> Bool) -> Int {
            scores.withUnsafeBufferPointer { s in
                members.withUnsafeBufferPointer { m in
                    var lo = start, hi = s.count
                    while lo < hi {
                        let mid = (lo + hi) >> 1
                        if before(s[mid], m[mid]) { lo = mid + 1 } else { hi = mid }
                    }
                    return lo
                }
            }
        }
    }

    /// A pair's place in the tree; valid until the tree next changes.
    struct Position {
        let leaf: Node
        let index: Int
    }

    private var root: Node
    private unowned(unsafe) var head: Node
    private unowned(unsafe) var tail: Node
    private(set) var length = 0

    init() {
        let leaf = Node()
        root = leaf
        head = leaf
        tail = leaf
    }

    @inline(__always)
    static func precedes(_ s1: Double, _ m1: Bytes, _ s2: Double, _ m2: Bytes) -> Bool {
        s1 < s2 || (s1 == s2 && m1 < m2)
    }

    // MARK: positions

    func member(_ p: Position) -> Bytes { p.leaf.members[p.index] }
    func score(_ p: Position) -> Double { p.leaf.scores[p.index] }
    var first: Position? { length == 0 ? nil : Position(leaf: head, index: 0) }
    var last: Position? { length == 0 ? nil : Position(leaf: tail, index: tail.scores.count - 1) }

    func next(_ p: Position) -> Position? {
        if p.index + 1 < p.leaf.scores.count { return Position(leaf: p.leaf, index: p.index + 1) }
        return p.leaf.next.map { Position(leaf: $0, index: 0) }
    }

    func previous(_ p: Position) -> Position? {
        if p.index > 0 { return Position(leaf: p.leaf, index: p.index - 1) }
        return p.leaf.previous.map { Position(leaf: $0, index: $0.scores.count - 1) }
    }

    // MARK: updates

    func insert(_ score: Double, _ member: Bytes) {
        length += 1
        guard let (right, moved) = insert(score, member, into: root) else { return }
        let top = Node()
        top.children = [root, right]
        top.counts = [length - moved, moved]
        top.scores = [0, right.scores[0]]
        top.members = [Bytes(), right.members[0]]
        root = top
    }

    /// Inserts below `node`; when `node` had to split, returns its new right sibling and the
    /// number of pairs under it.
    private func insert(_ score: Double, _ member: Bytes, into node: Node) -> (Node, Int)? {
        if node.isLeaf {
            let i = node.lowerBound(score, member)
            node.scores.insert(score, at: i)
            node.members.insert(member, at: i)
            return node.scores.count > ScoreTree.capacity ? splitLeaf(node) : nil
        }
        let c = node.childIndex(score, member)
        node.counts[c] += 1
        guard let (right, moved) = insert(score, member, into: node.children[c]) else { return nil }
        node.counts[c] -= moved
        node.children.insert(right, at: c + 1)
        node.counts.insert(moved, at: c + 1)
        node.scores.insert(right.scores[0], at: c + 1)
        node.members.insert(right.members[0], at: c + 1)
        return node.children.count > ScoreTree.capacity ? splitInner(node) : nil
    }

    private func splitLeaf(_ leaf: Node) -> (Node, Int) {
        let mid = leaf.scores.count / 2
        let right = Node()
        right.scores = Array(leaf.scores[mid...])
        right.members = Array(leaf.members[mid...])
        leaf.scores.removeSubrange(mid...)
        leaf.members.removeSubrange(mid...)
        right.next = leaf.next
        right.previous = leaf
        leaf.next?.previous = right
        leaf.next = right
        if tail === leaf { tail = right }
        return (right, right.scores.count)
    }

    /// The right half's first separator becomes the one its parent files it under.
    private func splitInner(_ node: Node) -> (Node, Int) {
        let mid = node.children.count / 2
        let right = Node()
        right.children = Array(node.children[mid...])
        right.counts = Array(node.counts[mid...])
        right.scores = Array(node.scores[mid...])
        right.members = Array(node.members[mid...])
        node.children.removeSubrange(mid...)
        node.counts.removeSubrange(mid...)
        node.scores.removeSubrange(mid...)
        node.members.removeSubrange(mid...)
        return (right, right.counts.reduce(0, +))
    }

    @discardableResult
    func delete(_ score: Double, _ member: Bytes) -> Bool {
        removed(remove(score, member, from: root, movingTo: nil))
    }

    /// Moves `member` from `old` to `new` score. When its neighbours in the same leaf still
    /// bracket the new score, only the score changes in place, as Redis does; otherwise
    /// the pair comes out on the way down and goes back in at its new place.
    func updateScore(_ old: Double, _ new: Double, _ member: Bytes) {
        if removed(remove(old, member, from: root, movingTo: new)) { insert(new, member) }
    }

    private enum Removal { case absent, removed, movedInPlace }

    /// Accounts for a removal at the root: true when a pair came out.
    private func removed(_ outcome: Removal) -> Bool {
        guard outcome == .removed else { return false }
        length -= 1
        while !root.isLeaf && root.children.count == 1 { root = root.children[0] }
        return true
    }

    private func remove(_ score: Double, _ member: Bytes, from node: Node, movingTo new: Double?) -> Removal {
        if node.isLeaf {
            let i = node.lowerBound(score, member)
            guard i < node.scores.count, node.scores[i] == score, node.members[i] == member else { return .absent }
            if let new, i > 0, i + 1 < node.scores.count,
               ScoreTree.precedes(node.scores[i - 1], node.members[i - 1], new, member),
               ScoreTree.precedes(new, member, node.scores[i + 1], node.members[i + 1]) {
                node.scores[i] = new
                return .movedInPlace
            }
            node.scores.remove(at: i)
            node.members.remove(at: i)
            return .removed
        }
        let c = node.childIndex(score, member)
        let outcome = remove(score, member, from: node.children[c], movingTo: new)
        if outcome == .removed {
            node.counts[c] -= 1
            if node.children[c].isUnderfull { rebalance(node, at: c) }
        }
        return outcome
    }

    // MARK: rebalancing

    /// Refills `parent.children[c]` from a sibling: merges the two when they fit in one
    /// node, otherwise shares the sibling's entries evenly.
    private func rebalance(_ parent: Node, at c: Int) {
        let l = c > 0 ? c - 1 : c
        let left = parent.children[l], right = parent.children[l + 1]
        if left.size + right.size <= ScoreTree.capacity {
            merge(parent, l)
        } else if left.isLeaf {
            shareLeaves(parent, l)
        } else {
            shareInner(parent, l)
        }
    }

    /// Moves all of child l+1 into child l and drops child l+1.
    private func merge(_ parent: Node, _ l: Int) {
        let r = l + 1
        let left = parent.children[l], right = parent.children[r]
        if left.isLeaf {
            left.scores += right.scores
            left.members += right.members
            left.next = right.next
            right.next?.previous = left
            if tail === right { tail = left }
        } else {
            left.children += right.children
            left.counts += right.counts
            left.scores.append(parent.scores[r])
            left.members.append(parent.members[r])
            left.scores += right.scores.dropFirst()
            left.members += right.members.dropFirst()
        }
        parent.counts[l] += parent.counts[r]
        parent.children.remove(at: r)
        parent.counts.remove(at: r)
        parent.scores.remove(at: r)
        parent.members.remove(at: r)
    }

    private func shareLeaves(_ parent: Node, _ l: Int) {
        let r = l + 1
        let left = parent.children[l], right = parent.children[r]
        let keep = (left.scores.count + right.scores.count) / 2
        if left.scores.count > keep {
            let k = left.scores.count - keep
            right.scores.insert(contentsOf: left.scores[keep...], at: 0)
            right.members.insert(contentsOf: left.members[keep...], at: 0)
            left.scores.removeSubrange(keep...)
            left.members.removeSubrange(keep...)
            parent.counts[l] -= k
            parent.counts[r] += k
        } else {
            let k = keep - left.scores.count
            left.scores += right.scores[..<k]
            left.members += right.members[..<k]
            right.scores.removeSubrange(..<k)
            right.members.removeSubrange(..<k)
            parent.counts[l] += k
            parent.counts[r] -= k
        }
        parent.scores[r] = right.scores[0]
        parent.members[r] = right.members[0]
    }

    /// The separator between the two children rotates through the parent, as in any B-tree.
    private func shareInner(_ parent: Node, _ l: Int) {
        let r = l + 1
        let left = parent.children[l], right = parent.children[r]
        let keep = (left.children.count + right.children.count) / 2
        if left.children.count > keep {
            let moved = left.counts[keep...].reduce(0, +)
            right.scores[0] = parent.scores[r]
            right.members[0] = parent.members[r]
            parent.scores[r] = left.scores[keep]
            parent.members[r] = left.members[keep]
            right.children.insert(contentsOf: left.children[keep...], at: 0)
            right.counts.insert(contentsOf: left.counts[keep...], at: 0)
            right.scores.insert(contentsOf: left.scores[keep...], at: 0)
            right.members.insert(contentsOf: left.members[keep...], at: 0)
            left.children.removeSubrange(keep...)
            left.counts.removeSubrange(keep...)
            left.scores.removeSubrange(keep...)
            left.members.removeSubrange(keep...)
            parent.counts[l] -= moved
            parent.counts[r] += moved
        } else {
            let k = keep - left.children.count
            let moved = right.counts[..<k].reduce(0, +)
            left.children += right.children[..<k]
            left.counts += right.counts[..<k]
            left.scores.append(parent.scores[r])
            left.members.append(parent.members[r])
            left.scores += right.scores[1..<k]
            left.members += right.members[1..<k]
            parent.scores[r] = right.scores[k]
            parent.members[r] = right.members[k]
            right.children.removeSubrange(..<k)
            right.counts.removeSubrange(..<k)
            right.scores.removeSubrange(..<k)
            right.members.removeSubrange(..<k)
            parent.counts[l] += moved
            parent.counts[r] -= moved
        }
    }

    // MARK: queries

    /// 1-based rank of (score, member), or 0 when absent.
    func rank(_ score: Double, _ member: Bytes) -> Int {
        var before = 0
        var node = root
        while !node.isLeaf {
            let c = node.childIndex(score, member)
            for i in 0..<c { before += node.counts[i] }
            node = node.children[c]
        }
        let i = node.lowerBound(score, member)
        guard i < node.scores.count, node.scores[i] == score, node.members[i] == member else { return 0 }
        return before + i + 1
    }

    func rank(of p: Position) -> Int { rank(score(p), member(p)) }

    /// The pair at 1-based `rank`.
    func position(atRank rank: Int) -> Position? {
        guard rank >= 1, rank <= length else { return nil }
        var left = rank - 1
        var node = root
        while !node.isLeaf {
            var c = 0
            while left >= node.counts[c] { left -= node.counts[c]; c += 1 }
            node = node.children[c]
        }
        return Position(leaf: node, index: left)
    }

    /// The first pair for which `before` is false; `before` must hold on a prefix of the
    /// order and fail on the rest.
    private func firstNot(_ before: (Double, Bytes) -> Bool) -> Position? {
        var node = root
        while !node.isLeaf { node = node.children[node.partition(from: 1, before) - 1] }
        let lo = node.partition(from: 0, before)
        if lo < node.scores.count { return Position(leaf: node, index: lo) }
        return node.next.map { Position(leaf: $0, index: 0) }
    }

    /// The last pair for which `holds` is true, under the same prefix rule.
    private func lastWhere(_ holds: (Double, Bytes) -> Bool) -> Position? {
        guard let p = firstNot(holds) else { return last }
        return previous(p)
    }

    func firstInRange(_ r: ScoreRange) -> Position? {
        guard !r.isEmpty, let p = firstNot({ s, _ in !r.satisfiesMin(s) }), r.satisfiesMax(score(p)) else { return nil }
        return p
    }

    func lastInRange(_ r: ScoreRange) -> Position? {
        guard !r.isEmpty, let p = lastWhere({ s, _ in r.satisfiesMax(s) }), r.satisfiesMin(score(p)) else { return nil }
        return p
    }

    /// The first pair of a lex range, found by search (Redis's skiplist; see
    /// SortedSetValue.range(lex:) for what that means when scores differ).
    func firstInLexRange(_ r: LexRange) -> Position? {
        guard lexRangeMayHold(r) else { return nil }
        guard let p = firstNot({ _, m in !r.satisfiesMin(m) }) else { return nil }
        let m = member(p)
        return r.satisfiesMax(m) && r.satisfiesMin(m) ? p : nil
    }

    func lastInLexRange(_ r: LexRange) -> Position? {
        guard lexRangeMayHold(r) else { return nil }
        guard let p = lastWhere({ _, m in r.satisfiesMax(m) }) else { return nil }
        let m = member(p)
        return r.satisfiesMin(m) && r.satisfiesMax(m) ? p : nil
    }

    /// Redis's first test of a lex range: not empty by its bounds, the last member not below
    /// `min` and the first not above `max`.
    private func lexRangeMayHold(_ r: LexRange) -> Bool {
        guard !r.isEmpty, let f = first, let l = last else { return false }
        return r.satisfiesMin(member(l)) && r.satisfiesMax(member(f))
    }

    // MARK: checking

    /// Every invariant above, for tests; returns the first one broken.
    func brokenInvariant() -> String? {
        var leaves: [Node] = []
        func check(_ node: Node, depth: Int, isRoot: Bool, low: (Double, Bytes)?, high: (Double, Bytes)?) -> (count: Int, depth: Int)? {
            if node.isLeaf {
                if !isRoot && (node.scores.count < ScoreTree.leafMinimum || node.scores.count > ScoreTree.capacity) { return nil }
                if node.scores.count != node.members.count { return nil }
                for i in node.scores.indices {
                    if let low, ScoreTree.precedes(node.scores[i], node.members[i], low.0, low.1) { return nil }
                    if let high, !ScoreTree.precedes(node.scores[i], node.members[i], high.0, high.1) { return nil }
                }
                leaves.append(node)
                return (node.scores.count, depth)
            }
            let n = node.children.count
            if n > ScoreTree.capacity || (isRoot ? n < 2 : n < ScoreTree.innerMinimum) { return nil }
            if node.counts.count != n || node.scores.count != n || node.members.count != n { return nil }
            var total = 0, leafDepth: Int?
            for i in 0..<n {
                let lo = i == 0 ? low : (node.scores[i], node.members[i])
                let hi = i + 1 < n ? (node.scores[i + 1], node.members[i + 1]) : high
                guard let sub = check(node.children[i], depth: depth + 1, isRoot: false, low: lo, high: hi),
                      sub.count == node.counts[i], leafDepth == nil || leafDepth == sub.depth else { return nil }
                leafDepth = sub.depth
                total += sub.count
            }
            return (total, leafDepth!)
        }
        guard let whole = check(root, depth: 0, isRoot: true, low: nil, high: nil) else { return "node shape, bounds or counts" }
        if whole.count != length { return "length" }
        if leaves.first !== head || leaves.last !== tail { return "head or tail" }
        for (i, leaf) in leaves.enumerated() {
            if leaf.previous !== (i > 0 ? leaves[i - 1] : nil) || leaf.next !== (i + 1 < leaves.count ? leaves[i + 1] : nil) {
                return "leaf links"
            }
        }
        var p = first, prior: (Double, Bytes)?
        while let q = p {
            if let prior, !ScoreTree.precedes(prior.0, prior.1, score(q), member(q)) { return "order" }
            prior = (score(q), member(q))
            p = next(q)
        }
        return nil
    }
}
