import DequeModule
import RESP

/// A stream entry ID: milliseconds and a sequence number, ordered as a pair.
public struct StreamID: Comparable, Hashable, Sendable {
    public var ms: UInt64
    public var seq: UInt64

    public init(_ ms: UInt64, _ seq: UInt64) { self.ms = ms; self.seq = seq }

    public static let zero = StreamID(0, 0)
    public static let max = StreamID(UInt64.max, UInt64.max)

    public static func < (a: StreamID, b: StreamID) -> Bool { (a.ms, a.seq) < (b.ms, b.seq) }

    /// The next ID in order, or nil after the last possible one.
    public var successor: StreamID? {
        if seq < UInt64.max { return StreamID(ms, seq + 1) }
        return ms < UInt64.max ? StreamID(ms + 1, 0) : nil
    }

    /// The previous ID in order, or nil before 0-0.
    public var predecessor: StreamID? {
        if seq > 0 { return StreamID(ms, seq - 1) }
        return ms > 0 ? StreamID(ms - 1, UInt64.max) : nil
    }

    public var bytes: Bytes { Bytes("\(ms)-\(seq)") }

    /// Parses `ms` or `ms-seq`; a missing sequence becomes `missingSeq`.
    /// `ms-*` is accepted only when `allowAutoSeq` and returns seq nil.
    public static func parse(_ b: Bytes, missingSeq: UInt64, allowAutoSeq: Bool = false) -> (ms: UInt64, seq: UInt64?)? {
        let s = b.string
        guard !s.isEmpty, s.utf8.count <= 41 else { return nil }
        let parts = s.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard let ms = digits(parts[0]) else { return nil }
        if parts.count == 1 { return (ms, missingSeq) }
        if parts[1] == "*" { return allowAutoSeq ? (ms, nil) : nil }
        guard let seq = digits(parts[1]) else { return nil }
        return (ms, seq)
    }

    private static func digits(_ s: Substring) -> UInt64? {
        guard !s.isEmpty, s.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        return UInt64(s)
    }
}

public struct StreamEntry {
    public let id: StreamID
    /// field, value, field, value...
    public let fields: [Bytes]
    /// The serial number of the node Redis would keep it in (see `StreamNodeLimits`).
    let node: Int
}

/// A message delivered to a consumer and not yet acknowledged.
public final class PendingEntry {
    public var consumer: Bytes
    public var deliveryTime: Int64
    public var deliveryCount: Int
    public init(consumer: Bytes, deliveryTime: Int64, deliveryCount: Int) {
        self.consumer = consumer
        self.deliveryTime = deliveryTime
        self.deliveryCount = deliveryCount
    }
}

public final class StreamConsumer {
    public let name: Bytes
    /// Last time it was seen by any command (XINFO's idle).
    public var seenTime: Int64
    /// Last time it read new entries or claimed some (XINFO's inactive, Redis 7.2); -1
    /// until it has.
    public var activeTime: Int64 = -1
    public var pending: Set<StreamID> = []
    public init(name: Bytes, now: Int64) { self.name = name; seenTime = now }
}

public final class ConsumerGroup {
    public let name: Bytes
    public var lastDelivered: StreamID
    /// Entries the group has read, for lag; nil when it cannot be known.
    public var entriesRead: Int?
    /// Every delivered, unacknowledged entry of the group (the PEL).
    public var pending: [StreamID: PendingEntry] = [:]
    public var consumers: [Bytes: StreamConsumer] = [:]

    public init(name: Bytes, lastDelivered: StreamID, entriesRead: Int?) {
        self.name = name
        self.lastDelivered = lastDelivered
        self.entriesRead = entriesRead
    }

    /// The PEL's IDs in order (sorted on demand: PELs are usually short).
    public var pendingIDs: [StreamID] { pending.keys.sorted() }

    public func consumer(_ name: Bytes, now: Int64) -> (StreamConsumer, created: Bool) {
        if let c = consumers[name] { return (c, false) }
        let c = StreamConsumer(name: name, now: now)
        consumers[name] = c
        return (c, true)
    }
}

/// A stream: entries in ID order, plus consumer groups.
///
/// Entries sit in a deque ordered by ID, so appends and trims from the front are O(1)
/// and ranges are found by binary search; XDEL in the middle is O(n).
public final class StreamValue {
    public private(set) var entries = Deque<StreamEntry>()
    /// The nodes holding entries, by serial number (`StreamEntry.node`).
    private var nodes: [Int: StreamNode] = [:]
    private var nodeSerials = 0
    /// Nodes holding at least one entry (XINFO's radix-tree-keys).
    public var nodeCount: Int { nodes.count }
    public var lastID = StreamID.zero
    public var maxDeletedID = StreamID.zero
    /// Entries ever added (XINFO entries-added), the base of consumer-group lag.
    public var entriesAdded = 0
    public var groups: [Bytes: ConsumerGroup] = [:]

    public init() {}

    public var count: Int { entries.count }
    public var firstID: StreamID? { entries.first?.id }

    /// The entries node by node (ranges of `entries` kept in one node), as an RDB file
    /// stores them.
    public var nodeRuns: [Range<Int>] {
        var runs: [Range<Int>] = []
        var start = 0
        for i in entries.indices where i > start && entries[i].node != entries[start].node {
            runs.append(start..<i)
            start = i
        }
        if start < entries.count { runs.append(start..<entries.count) }
        return runs
    }

    /// Index of the first entry with ID >= `id`.
    public func lowerBound(_ id: StreamID) -> Int {
        var lo = 0, hi = entries.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if entries[mid].id < id { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    public func entry(_ id: StreamID) -> StreamEntry? {
        let i = lowerBound(id)
        return i < entries.count && entries[i].id == id ? entries[i] : nil
    }

    /// Entries with `start <= id <= end`, at most `limit`, newest first when `reverse`.
    public func range(_ start: StreamID, _ end: StreamID, limit: Int = Int.max, reverse: Bool = false) -> [StreamEntry] {
        guard start <= end, limit > 0 else { return [] }
        var out: [StreamEntry] = []
        if reverse {
            var i = lowerBound(end)
            if i < entries.count && entries[i].id == end { i += 1 }
            i -= 1
            while i >= 0 && entries[i].id >= start && out.count < limit { out.append(entries[i]); i -= 1 }
        } else {
            var i = lowerBound(start)
            while i < entries.count && entries[i].id <= end && out.count < limit { out.append(entries[i]); i += 1 }
        }
        return out
    }

    public func append(_ id: StreamID, _ fields: [Bytes]) {
        var serial = nodeSerials
        if let last = entries.last, !nodes[last.node]!.isFull(adding: fields) {
            serial = last.node
        } else {
            nodeSerials += 1
            serial = nodeSerials
            nodes[serial] = StreamNode(id: id, fieldsAndValues: fields)
        }
        nodes[serial]!.append(id, fields)
        entries.append(StreamEntry(id: id, fields: fields, node: serial))
        lastID = id
        entriesAdded += 1
    }

    public func delete(_ id: StreamID) -> Bool {
        let i = lowerBound(id)
        guard i < entries.count && entries[i].id == id else { return false }
        let node = entries.remove(at: i).node
        let nodeEmptied = (i == 0 || entries[i - 1].node != node) && (i == entries.count || entries[i].node != node)
        noteRemoved(1, from: node, nodeEmptied: nodeEmptied)
        if id > maxDeletedID { maxDeletedID = id }
        return true
    }

    /// Node bookkeeping after `n` entries of `node` went: an emptied node is freed;
    /// otherwise they still take room in it, marked deleted.
    private func noteRemoved(_ n: Int, from node: Int, nodeEmptied: Bool) {
        if nodeEmptied {
            nodes[node] = nil
        } else {
            nodes[node]!.live -= n
            nodes[node]!.deleted += n
        }
    }

    /// Removes entries from the front, as Redis's trim does, and returns how many: whole
    /// nodes while that stays within `maxLength` / below `minID`, stopping before a node
    /// that would take the count past `limit` (0: none); then, unless `approximate`, the
    /// remaining excess from the next node one entry at a time.
    public func trim(maxLength: Int? = nil, minID: StreamID? = nil, approximate: Bool, limit: Int) -> Int {
        guard maxLength != nil || minID != nil else { return 0 }
        var removed = 0
        while let first = entries.first {
            if let maxLength, entries.count <= maxLength { break }
            var nodeEnd = 1
            while nodeEnd < entries.count && entries[nodeEnd].node == first.node { nodeEnd += 1 }
            if limit > 0 && removed + nodeEnd > limit { break }
            let wholeNode = maxLength.map { entries.count - nodeEnd >= $0 } ?? (nodes[first.node]!.lastID < minID!)
            if wholeNode {
                entries.removeFirst(nodeEnd)
                noteRemoved(nodeEnd, from: first.node, nodeEmptied: true)
                removed += nodeEnd
                continue
            }
            if approximate { break }
            let n = maxLength.map { entries.count - $0 } ?? lowerBound(minID!)
            entries.removeFirst(n)
            noteRemoved(n, from: first.node, nodeEmptied: false)
            removed += n
            break
        }
        return removed
    }

    /// True when an entry between `start` and `end` was deleted (the range has holes).
    public func hasTombstones(from start: StreamID, to end: StreamID = .max) -> Bool {
        guard let first = firstID, maxDeletedID != .zero, maxDeletedID >= first else { return false }
        return start <= maxDeletedID && maxDeletedID <= end
    }

    /// How many entries were added up to and including `id`, when that can be known
    /// (Redis's estimate of a consumer group's position, for lag and entries-read).
    public func entriesAdded(through id: StreamID) -> Int? {
        if entriesAdded == 0 { return 0 }
        if entries.isEmpty && id <= lastID { return entriesAdded }
        if id == lastID { return entriesAdded }
        if id > lastID { return nil }
        guard let first = firstID else { return nil }
        if maxDeletedID == .zero || maxDeletedID < first {
            if id < first { return entriesAdded - entries.count }
            if id == first { return entriesAdded - entries.count + 1 }
        }
        return nil
    }

    /// A group's lag: entries not yet read by it, when known.
    public func lag(of group: ConsumerGroup) -> Int? {
        if entriesAdded == 0 { return 0 }
        if let read = group.entriesRead, !hasTombstones(from: group.lastDelivered) {
            return entriesAdded - read
        }
        return entriesAdded(through: group.lastDelivered).map { entriesAdded - $0 }
    }

    /// The next auto-generated ID after `lastID` for the time `now` (or the `requested`
    /// millisecond of an `ms-*` ID), nil when there is none.
    public func nextID(now: Int64, ms requested: UInt64? = nil) -> StreamID? {
        let ms = requested ?? UInt64(Swift.max(0, now))
        if ms > lastID.ms { return StreamID(ms, 0) }
        guard requested != nil else { return lastID.successor }
        // `ms-*`: the sequence goes on within that millisecond, never into the next one.
        return ms == lastID.ms && lastID.seq < UInt64.max ? StreamID(ms, lastID.seq + 1) : nil
    }

    public func copy() -> StreamValue {
        let s = StreamValue()
        s.entries = entries
        s.nodes = nodes
        s.nodeSerials = nodeSerials
        s.lastID = lastID
        s.maxDeletedID = maxDeletedID
        s.entriesAdded = entriesAdded
        for (name, g) in groups {
            let ng = ConsumerGroup(name: name, lastDelivered: g.lastDelivered, entriesRead: g.entriesRead)
            for (id, p) in g.pending { ng.pending[id] = PendingEntry(consumer: p.consumer, deliveryTime: p.deliveryTime, deliveryCount: p.deliveryCount) }
            for (cn, c) in g.consumers {
                let nc = StreamConsumer(name: cn, now: c.seenTime)
                nc.activeTime = c.activeTime
                nc.pending = c.pending
                ng.consumers[cn] = nc
            }
            s.groups[name] = ng
        }
        return s
    }
}
