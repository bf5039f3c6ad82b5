import DequeModule
import Keyspace
import RESP

// Decodes one value of each RDB type into Berth's values. The plain types (list, set,
// zset, hash) are a count and that many strings; the compact ones are one string holding
// a ziplist, listpack, intset or zipmap; quicklists are a count of such strings; streams
// and module values have decoders of their own (StreamDecoder, ModuleValueDecoder).
//
// Redis refuses duplicate members, fields and NaN scores in a file; so does this reader.
// A collection that decodes to nothing is reported as nil: Redis skips such keys (old
// versions could write them) instead of failing the load.

/// What decoding a value may need besides its bytes.
struct ValueContext {
    /// Finds module data types; nil where none is available (a DUMP without a target).
    let target: RDBLoadTarget?
    /// The key and database being loaded, for the module API's GetKeyNameFromIO and
    /// GetDbIdFromIO (nil and -1 in a DUMP payload).
    let key: Bytes?
    let db: Int
    /// Unix milliseconds at the start of the load: hash fields whose TTL has passed by
    /// then are dropped (see `hashWithFieldTTLs`).
    let now: Int64
}

/// The two element-list encodings, so the collection decoders serve both.
protocol PackedReader {
    init(_ blob: RDBInput) throws
    mutating func next() throws -> PackedElement?
    var capacityHint: Int { get }
}

extension ZiplistReader: PackedReader {}
extension ListpackReader: PackedReader {}

enum ValueDecoder {
    /// Room reserved up front is capped: counts are checked against the bytes left, but a
    /// damaged count in a large file could still ask for far more memory than the data
    /// will fill. Past this, collections grow as they are filled.
    static func reservation(_ n: Int) -> Int { min(n, 1 << 20) }

    /// The sorted-set size past which Redis keeps a loaded set as a skiplist (see
    /// `SortedSetValue.convertToTree`): its -0 scores then stay -0.
    private static var zsetListpackEntries: Int { EncodingLimits.zsetEntries.load(ordering: .relaxed) }

    /// Whether `type` is a value type byte rather than an unknown opcode (type 6, the
    /// pre-release module format, counts: decoding it reports why it is refused).
    static func isValueType(_ type: UInt8) -> Bool {
        type <= RDBType.module2 || (type >= RDBType.hashZipmap && type <= RDBType.hashListpackEx)
    }

    static func decode(type: UInt8, from input: inout RDBInput, context: ValueContext) throws -> Value? {
        let start = input.position
        switch type {
        case RDBType.string: return .string(try input.string())
        case RDBType.list: return try plainList(&input)
        case RDBType.set: return try plainSet(&input)
        case RDBType.zset: return try plainSortedSet(&input, binaryScores: false)
        case RDBType.zset2: return try plainSortedSet(&input, binaryScores: true)
        case RDBType.hash: return try plainHash(&input)
        case RDBType.modulePreGA: throw input.error("Pre-release module format not supported", at: start)
        case RDBType.module2: return try ModuleValueDecoder.decode(&input, context: context)
        case RDBType.hashZipmap: return try zipmapHash(&input)
        case RDBType.listZiplist: return try packed(&input, as: ZiplistReader.self) { r, _ in try list(&r) }
        case RDBType.setIntset: return try intsetSet(&input)
        case RDBType.zsetZiplist: return try packed(&input, as: ZiplistReader.self) { try sortedSet(&$0, $1) }
        case RDBType.hashZiplist: return try packed(&input, as: ZiplistReader.self) { try hash(&$0, $1) }
        case RDBType.listQuicklist: return try quicklist(&input, containers: false)
        case RDBType.streamListpacks, RDBType.streamListpacks2, RDBType.streamListpacks3:
            return try StreamDecoder.decode(&input, type: type)
        case RDBType.hashListpack: return try packed(&input, as: ListpackReader.self) { try hash(&$0, $1) }
        case RDBType.zsetListpack: return try packed(&input, as: ListpackReader.self) { try sortedSet(&$0, $1) }
        case RDBType.listQuicklist2: return try quicklist(&input, containers: true)
        case RDBType.setListpack: return try packed(&input, as: ListpackReader.self) { try set(&$0, $1) }
        case RDBType.hashMetadataPreGA, RDBType.hashMetadata:
            return try hashWithFieldTTLs(&input, relative: type == RDBType.hashMetadata, now: context.now)
        case RDBType.hashListpackExPreGA, RDBType.hashListpackEx:
            return try listpackHashWithFieldTTLs(&input, hasMinimum: type == RDBType.hashListpackEx, now: context.now)
        default:
            throw input.error("Unknown RDB value type \(type)", at: start)
        }
    }

    // MARK: Plain encodings: a count, then strings (and scores).

    private static func plainList(_ input: inout RDBInput) throws -> Value? {
        let n = try input.count(of: "List")
        guard n > 0 else { return nil }
        var items = Deque<Bytes>()
        items.reserveCapacity(reservation(n))
        for _ in 0..<n { items.append(try input.string()) }
        return .list(ListValue(items))
    }

    private static func plainSet(_ input: inout RDBInput) throws -> Value? {
        let n = try input.count(of: "Set")
        guard n > 0 else { return nil }
        var members = Set<Bytes>(minimumCapacity: reservation(n))
        for _ in 0..<n {
            let start = input.position
            guard members.insert(try input.string()).inserted else {
                throw input.error("Duplicate set member", at: start)
            }
        }
        return .set(SetValue(members))
    }

    private static func plainSortedSet(_ input: inout RDBInput, binaryScores: Bool) throws -> Value? {
        // A member takes at least a byte, a binary score eight, an ASCII one at least one.
        let n = try input.count(of: "Sorted set", minBytesEach: binaryScores ? 9 : 2)
        guard n > 0 else { return nil }
        var z = SortedSetValue()
        if n > zsetListpackEntries { z.convertToTree() }
        for _ in 0..<n {
            let start = input.position
            let member = try input.string()
            let score = binaryScores ? try input.binaryDouble() : try input.asciiDouble()
            try add(member, score, to: &z, input, at: start)
        }
        return .zset(z)
    }

    private static func plainHash(_ input: inout RDBInput) throws -> Value? {
        let n = try input.count(of: "Hash", minBytesEach: 2)
        guard n > 0 else { return nil }
        if n <= EncodingLimits.hashEntries.load(ordering: .relaxed) {
            // Small enough to be packed: read in the file's order, which is the order
            // the fields were added (Berth writes packed hashes as plain ones).
            var fields = HashFields()
            for _ in 0..<n {
                let start = input.position
                let field = try input.string()
                guard fields.updateValue(try input.string(), forKey: field) == nil else {
                    throw input.error("Duplicate hash field", at: start)
                }
            }
            return .hash(fields)
        }
        var fields = [Bytes: Bytes](minimumCapacity: reservation(n))
        for _ in 0..<n {
            let start = input.position
            let field = try input.string()
            guard fields.updateValue(try input.string(), forKey: field) == nil else {
                throw input.error("Duplicate hash field", at: start)
            }
        }
        return .hash(HashFields(fields))
    }

    // MARK: Compact encodings: one string holding a ziplist or listpack.

    /// Decodes the string that follows as a ziplist or listpack with `body`.
    private static func packed<R: PackedReader>(
        _ input: inout RDBInput, as _: R.Type, _ body: (inout R, RDBInput) throws -> Value?
    ) throws -> Value? {
        try input.withNestedInput { blob in
            var reader = try R(blob)
            return try body(&reader, blob)
        }
    }

    private static func list<R: PackedReader>(_ reader: inout R) throws -> Value? {
        var items = Deque<Bytes>()
        items.reserveCapacity(reservation(reader.capacityHint))
        try appendAll(&reader, to: &items)
        return items.isEmpty ? nil : .list(ListValue(items))
    }

    /// (Quicklist nodes append here one after another: reserving room per node would make
    /// the deque reallocate at every node, so only whole-list decoders reserve.)
    private static func appendAll<R: PackedReader>(_ reader: inout R, to items: inout Deque<Bytes>) throws {
        while let e = try reader.next() { items.append(e.asBytes) }
    }

    private static func set<R: PackedReader>(_ reader: inout R, _ blob: RDBInput) throws -> Value? {
        var members = Set<Bytes>(minimumCapacity: reservation(reader.capacityHint))
        while let e = try reader.next() {
            guard members.insert(e.asBytes).inserted else { throw blob.error("Duplicate set member") }
        }
        return members.isEmpty ? nil : .set(SetValue(members))
    }

    private static func hash<R: PackedReader>(_ reader: inout R, _ blob: RDBInput) throws -> Value? {
        // Packed as it was packed (HashFields.swift), so the fields keep their order.
        var fields = HashFields()
        while let field = try reader.next() {
            guard let value = try reader.next() else { throw blob.error("Hash field without a value") }
            guard fields.updateValue(value.asBytes, forKey: field.asBytes) == nil else {
                throw blob.error("Duplicate hash field")
            }
        }
        return fields.isEmpty ? nil : .hash(fields)
    }

    private static func sortedSet<R: PackedReader>(_ reader: inout R, _ blob: RDBInput) throws -> Value? {
        var z = SortedSetValue()
        if reader.capacityHint / 2 > zsetListpackEntries { z.convertToTree() }
        while let member = try reader.next() {
            guard let scoreElement = try reader.next() else { throw blob.error("Sorted set member without a score") }
            guard let score = scoreElement.asDouble else { throw blob.error("Sorted set score is not a number") }
            try add(member.asBytes, score, to: &z, blob, at: blob.position)
        }
        return z.count == 0 ? nil : .zset(z)
    }

    private static func add(_ member: Bytes, _ score: Double, to z: inout SortedSetValue, _ input: RDBInput, at start: Int) throws {
        guard !score.isNaN else { throw input.error("Sorted set score is NaN", at: start) }
        guard z.insert(member, score) else { throw input.error("Duplicate sorted set member", at: start) }
    }

    private static func intsetSet(_ input: inout RDBInput) throws -> Value? {
        try input.withNestedInput { blob in
            var reader = try IntsetReader(blob)
            var members = Set<Bytes>(minimumCapacity: reservation(reader.count))
            while let v = try reader.next() { members.insert(Bytes(Int(v))) }
            return members.isEmpty ? nil : .set(SetValue(members))
        }
    }

    private static func zipmapHash(_ input: inout RDBInput) throws -> Value? {
        try input.withNestedInput { blob in
            var fields: [Bytes: Bytes] = [:]
            try Zipmap.forEachPair(blob) { field, value in
                guard fields.updateValue(Bytes(value), forKey: Bytes(field)) == nil else {
                    throw blob.error("Duplicate hash field in zipmap")
                }
            }
            return .hash(HashFields(fields))
        }
    }

    // MARK: Quicklists: a count of nodes, each a ziplist (type 14) or, in type 18, a
    // container kind then a listpack (packed) or a single element (plain).

    private static let plainNode: UInt64 = 1
    private static let packedNode: UInt64 = 2

    private static func quicklist(_ input: inout RDBInput, containers: Bool) throws -> Value? {
        let nodes = try input.count(of: "Quicklist", minBytesEach: containers ? 2 : 1)
        var items = Deque<Bytes>()
        for _ in 0..<nodes {
            let start = input.position
            let container = containers ? try input.length() : packedNode
            switch container {
            case plainNode:
                let item = try input.string()
                guard !item.isEmpty else { throw input.error("Empty quicklist node", at: start) }
                items.append(item)
            case packedNode:
                try input.withNestedInput { blob in
                    guard blob.count > 0 else { throw blob.error("Empty quicklist node") }
                    if containers {
                        var reader = try ListpackReader(blob)
                        try appendAll(&reader, to: &items)
                    } else {
                        var reader = try ZiplistReader(blob)
                        try appendAll(&reader, to: &items)
                    }
                }
            default:
                throw input.error("Quicklist node container \(container) is neither plain nor packed", at: start)
            }
        }
        return items.isEmpty ? nil : .list(ListValue(items))
    }

    // MARK: Redis 7.4's hashes with field TTLs (RDB 12). Berth has no field TTLs yet: the
    // fields load as plain fields, except those already expired, which a Redis primary
    // would drop as soon as it noticed.

    /// Types 22 and 24: [minimum TTL, type 24 only] count, then per field its TTL (a length;
    /// 0 = none; in type 24 relative to the minimum, plus one), the field, the value.
    private static func hashWithFieldTTLs(_ input: inout RDBInput, relative: Bool, now: Int64) throws -> Value? {
        let minimum = relative ? try input.milliseconds() : 0
        let n = try input.count(of: "Hash", minBytesEach: 3)
        var fields = [Bytes: Bytes](minimumCapacity: reservation(n))
        for _ in 0..<n {
            let start = input.position
            let ttl = try input.length()
            let expireAt = ttl == 0 ? 0 : relative ? Int64(truncatingIfNeeded: ttl &+ UInt64(bitPattern: minimum) &- 1) : Int64(truncatingIfNeeded: ttl)
            let field = try input.string()
            let value = try input.string()
            guard fields[field] == nil else { throw input.error("Duplicate hash field", at: start) }
            if expireAt == 0 || expireAt > now { fields[field] = value }
        }
        return fields.isEmpty ? nil : .hash(HashFields(fields))
    }

    /// Types 23 and 25: [minimum TTL, type 25 only] then a listpack of field, value, TTL
    /// (absolute Unix ms; 0 = none) triples.
    private static func listpackHashWithFieldTTLs(_ input: inout RDBInput, hasMinimum: Bool, now: Int64) throws -> Value? {
        if hasMinimum { _ = try input.milliseconds() }
        return try input.withNestedInput { blob in
            var reader = try ListpackReader(blob)
            var fields = [Bytes: Bytes](minimumCapacity: reservation(reader.capacityHint / 3))
            var seen = Set<Bytes>()
            while let field = try reader.next() {
                let value = try reader.required("hash value")
                let expireAt = try reader.requiredInteger("hash field TTL")
                let name = field.asBytes
                guard seen.insert(name).inserted else { throw blob.error("Duplicate hash field") }
                if expireAt == 0 || expireAt > now { fields[name] = value.asBytes }
            }
            return fields.isEmpty ? nil : .hash(HashFields(fields))
        }
    }
}
