import RESP
import Synchronization

/// Redis keeps a stream's entries in radix-tree nodes, each a listpack of up to
/// stream-node-max-entries entries and stream-node-max-bytes bytes; `~` trimming removes
/// whole nodes only, so how many entries it removes depends on where the nodes end.
/// Berth keeps the entries in one deque, tags each with the node Redis would have put it
/// in, and follows each node's size as Redis's listpack encoding would have it: entries
/// go to the last node (which, once the newest node is emptied, is an older one again).
public enum StreamNodeLimits {
    /// stream-node-max-entries (0: no limit), set by CONFIG.
    public static let maxEntries = Atomic<Int>(100)
    /// stream-node-max-bytes (0: Redis's hard cap of 1 GiB), set by CONFIG.
    public static let maxBytes = Atomic<Int>(4096)

    static let hardMaxBytes = 1 << 30

    /// The LIMIT that `~` trimming has when none is given: 100 nodes' worth, kept within
    /// Redis's bounds for a limit of 0 or a huge one.
    public static var defaultTrimLimit: Int {
        let n = maxEntries.load(ordering: .relaxed).multipliedReportingOverflow(by: 100)
        if n.overflow || n.partialValue > 1_000_000 { return 1_000_000 }
        return n.partialValue <= 0 ? 10_000 : n.partialValue
    }
}

/// What Berth knows of one node: what decides whether Redis appends to it or opens the
/// next one, and whether MINID trimming may remove it whole.
struct StreamNode {
    /// The node's first entry: later entries are stored as differences from its ID and,
    /// when they have the same field names, without them.
    let primaryID: StreamID
    let primaryFields: [Bytes]
    /// Entries in the node: still there, and deleted but still taking room.
    var live = 0
    var deleted = 0
    /// The last ID appended, its entry deleted or not (Redis reads it from the listpack).
    var lastID: StreamID
    /// The listpack's size, less the count and deleted-count elements (whose encoding
    /// grows with them).
    var otherBytes: Int

    init(id: StreamID, fieldsAndValues: [Bytes]) {
        primaryID = id
        lastID = id
        primaryFields = stride(from: 0, to: fieldsAndValues.count, by: 2).map { fieldsAndValues[$0] }
        // Header and end byte, then the master entry: field count, fields, terminator.
        otherBytes = 7 + ListpackSize.integer(primaryFields.count)
            + primaryFields.reduce(0) { $0 + ListpackSize.element($1) } + ListpackSize.integer(0)
    }

    var bytes: Int { otherBytes + ListpackSize.integer(live) + ListpackSize.integer(deleted) }

    /// Whether Redis would open a new node rather than append this entry here.
    func isFull(adding fieldsAndValues: [Bytes]) -> Bool {
        var maxBytes = StreamNodeLimits.maxBytes.load(ordering: .relaxed)
        if maxBytes <= 0 || maxBytes > StreamNodeLimits.hardMaxBytes { maxBytes = StreamNodeLimits.hardMaxBytes }
        let payload = fieldsAndValues.reduce(0) { $0 + $1.count }
        if bytes + payload >= maxBytes { return true }
        let maxEntries = StreamNodeLimits.maxEntries.load(ordering: .relaxed)
        return maxEntries > 0 && live + deleted >= maxEntries
    }

    /// Accounts for an entry appended to the node (the first one included).
    mutating func append(_ id: StreamID, _ fieldsAndValues: [Bytes]) {
        let fieldCount = fieldsAndValues.count / 2
        let sameFields = fieldCount == primaryFields.count
            && primaryFields.indices.allSatisfy { primaryFields[$0] == fieldsAndValues[2 * $0] }
        var size = ListpackSize.integer(sameFields ? 2 : 0)
            + ListpackSize.integer(Int(Int64(bitPattern: id.ms &- primaryID.ms)))
            + ListpackSize.integer(Int(Int64(bitPattern: id.seq &- primaryID.seq)))
        for (i, s) in fieldsAndValues.enumerated() where !sameFields || i % 2 == 1 { size += ListpackSize.element(s) }
        // Without the same fields the entry also stores its field count; the last
        // element counts the entry's elements, for walking back.
        if !sameFields { size += ListpackSize.integer(fieldCount) }
        size += ListpackSize.integer(sameFields ? fieldCount + 3 : 2 * fieldCount + 4)
        otherBytes += size
        live += 1
        lastID = id
    }
}

/// Sizes of listpack elements, as Redis encodes them.
enum ListpackSize {
    /// A string element: stored as an integer when it spells one exactly.
    static func element(_ s: Bytes) -> Int {
        if let v = Numbers.int(s) { return integer(v) }
        let n = s.count
        return withBacklen((n < 64 ? 1 : n < 4096 ? 2 : 5) + n)
    }

    static func integer(_ v: Int) -> Int {
        switch v {
        case 0...127: return withBacklen(1)
        case -4096...4095: return withBacklen(2)
        case Int(Int16.min)...Int(Int16.max): return withBacklen(3)
        case -(1 << 23)...((1 << 23) - 1): return withBacklen(4)
        case Int(Int32.min)...Int(Int32.max): return withBacklen(5)
        default: return withBacklen(9)
        }
    }

    /// An element's encoding plus the trailing length that lets a listpack be walked back.
    private static func withBacklen(_ n: Int) -> Int {
        n + (n <= 127 ? 1 : n < 16383 ? 2 : n < 2_097_151 ? 3 : n < 268_435_455 ? 4 : 5)
    }
}
