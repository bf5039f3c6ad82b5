import Keyspace
import RESP

/// Decodes a stream (RDB types 15, 19 and 21): its entries, metadata and consumer groups.
///
/// The entries come as radix-tree nodes: each a 16-byte master ID (milliseconds and
/// sequence, big-endian) and a listpack. The listpack opens with a master entry: live
/// count, deleted count, the number of master fields, those field names, and a 0. Then
/// each entry: flags (1 = deleted, 2 = same fields as the master), the ID's millisecond and
/// sequence differences from the master ID, then either the field count and field/value
/// pairs, or (same fields) just the values; and last the number of listpack elements the
/// entry took, which lets Redis walk a node backwards and lets this reader check it.
///
/// After the nodes: the length, the last ID, and from type 19 the first ID, the largest
/// deleted ID and the count of entries ever added. Then the consumer groups: name, last
/// delivered ID, from type 19 the entries read, the group's pending entries list (raw
/// ID, delivery time, delivery count) and the consumers (name, seen time, from type 21 the
/// active time, and the IDs of the group's pending entries they own).
enum StreamDecoder {
    private static let deletedFlag: Int64 = 1
    private static let sameFieldsFlag: Int64 = 2

    static func decode(_ input: inout RDBInput, type: UInt8) throws -> Value? {
        let stream = StreamValue()
        // A node is a 17-byte key string and a listpack string of at least 8 bytes.
        let nodes = try input.count(of: "Stream", minBytesEach: 25)
        var lastEntry: StreamID?
        for _ in 0..<nodes {
            let master = try nodeKey(&input)
            try input.withNestedInput { blob in
                try readNode(blob, master: master, into: stream, after: &lastEntry)
            }
        }
        try readMetadata(&input, type: type, into: stream)
        try readGroups(&input, type: type, into: stream)
        return .stream(stream)
    }

    private static func nodeKey(_ input: inout RDBInput) throws -> StreamID {
        let start = input.position
        let key = try input.string()
        guard key.count == 16 else {
            throw input.error("Stream node key has \(key.count) bytes, not a 16-byte ID", at: start)
        }
        return key.withUnsafeBytes { b in
            StreamID(UInt64(bigEndian: b.loadUnaligned(as: UInt64.self)),
                     UInt64(bigEndian: b.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
        }
    }

    /// One node's entries, appended to `stream` in order; deleted entries are skipped.
    private static func readNode(_ blob: RDBInput, master: StreamID, into stream: StreamValue, after last: inout StreamID?) throws {
        var lp = try ListpackReader(blob)
        let live = try boundedCount(&lp, blob, "entry count")
        let deleted = try boundedCount(&lp, blob, "deleted entry count")
        let masterFieldCount = try boundedCount(&lp, blob, "master field count")
        var masterFields: [Bytes] = []
        masterFields.reserveCapacity(ValueDecoder.reservation(masterFieldCount))
        for _ in 0..<masterFieldCount { masterFields.append(try lp.required("master field").asBytes) }
        guard try lp.requiredInteger("master entry terminator") == 0 else {
            throw blob.error("Stream node's master entry does not end with 0")
        }
        var liveSeen = 0
        for _ in 0..<(live + deleted) {
            let flags = try lp.requiredInteger("entry flags")
            let msDelta = try lp.requiredInteger("entry ID")
            let seqDelta = try lp.requiredInteger("entry ID")
            // Differences are stored as signed 64-bit values; the ID wraps like Redis's.
            let id = StreamID(master.ms &+ UInt64(bitPattern: msDelta), master.seq &+ UInt64(bitPattern: seqDelta))
            var fields: [Bytes] = []
            let elements: Int64
            if flags & sameFieldsFlag != 0 {
                fields.reserveCapacity(2 * masterFields.count)
                for name in masterFields {
                    fields.append(name)
                    fields.append(try lp.required("entry value").asBytes)
                }
                elements = Int64(masterFields.count) + 3
            } else {
                let n = try boundedCount(&lp, blob, "entry field count")
                fields.reserveCapacity(ValueDecoder.reservation(2 * n))
                for _ in 0..<(2 * n) { fields.append(try lp.required("entry field").asBytes) }
                elements = 2 * Int64(n) + 4
            }
            guard try lp.requiredInteger("entry element count") == elements else {
                throw blob.error("Stream entry's element count does not match the entry")
            }
            if flags & deletedFlag != 0 { continue }
            if let last, id <= last { throw blob.error("Stream entries are not in ascending ID order") }
            stream.append(id, fields)
            last = id
            liveSeen += 1
        }
        guard liveSeen == live else {
            throw blob.error("Stream node says \(live) live entries but has \(liveSeen)")
        }
        guard try lp.next() == nil else { throw blob.error("Stream node has elements after its last entry") }
    }

    /// A count stored in a node: it can be no larger than the node's bytes.
    private static func boundedCount(_ lp: inout ListpackReader, _ blob: RDBInput, _ what: String) throws -> Int {
        let v = try lp.requiredInteger(what)
        guard v >= 0, v <= Int64(blob.count) else { throw blob.error("Stream node \(what) \(v) is impossible") }
        return Int(v)
    }

    private static func streamID(_ input: inout RDBInput) throws -> StreamID {
        StreamID(try input.length(), try input.length())
    }

    private static func readMetadata(_ input: inout RDBInput, type: UInt8, into stream: StreamValue) throws {
        let start = input.position
        let length = try input.intLength("Stream length")
        let lastID = try streamID(&input)
        var maxDeleted = StreamID.zero
        var entriesAdded = length
        if type >= RDBType.streamListpacks2 {
            _ = try streamID(&input)  // the first ID: Berth takes it from the entries
            maxDeleted = try streamID(&input)
            entriesAdded = try input.intLength("Stream entries-added")
        }
        guard length == stream.count else {
            throw input.error("Stream length \(length) does not match its \(stream.count) entries", at: start)
        }
        if let last = stream.entries.last?.id, last > lastID {
            throw input.error("Stream last ID is before its last entry", at: start)
        }
        stream.lastID = lastID
        stream.maxDeletedID = maxDeleted
        stream.entriesAdded = entriesAdded
    }

    private static func readGroups(_ input: inout RDBInput, type: UInt8, into stream: StreamValue) throws {
        // A group is at least a name, an ID, a PEL count and a consumer count.
        let groups = try input.count(of: "Consumer groups", minBytesEach: 5)
        for _ in 0..<groups {
            let start = input.position
            let name = try input.string()
            let lastDelivered = try streamID(&input)
            let entriesRead: Int?
            if type >= RDBType.streamListpacks2 {
                // Unknown is stored as -1, that is 2^64 - 1.
                let v = try input.length()
                entriesRead = v <= UInt64(Int.max) ? Int(v) : nil
            } else {
                entriesRead = stream.entriesAdded(through: lastDelivered)
            }
            guard stream.groups[name] == nil else { throw input.error("Duplicate consumer group", at: start) }
            let group = ConsumerGroup(name: name, lastDelivered: lastDelivered, entriesRead: entriesRead)
            try readPendingEntries(&input, into: group)
            try readConsumers(&input, type: type, into: group)
            stream.groups[name] = group
        }
    }

    /// The group's PEL: owners are filled in from the consumers that follow.
    private static func readPendingEntries(_ input: inout RDBInput, into group: ConsumerGroup) throws {
        // A raw ID, a delivery time and a count: at least 25 bytes.
        let n = try input.count(of: "Pending entries list", minBytesEach: 25)
        group.pending.reserveCapacity(ValueDecoder.reservation(n))
        for _ in 0..<n {
            let start = input.position
            let raw = try input.rawStreamID()
            let time = try input.milliseconds()
            let deliveries = try input.intLength("Delivery count")
            let id = StreamID(raw.ms, raw.seq)
            guard group.pending[id] == nil else { throw input.error("Duplicate pending entry in consumer group", at: start) }
            group.pending[id] = PendingEntry(consumer: Bytes(), deliveryTime: time, deliveryCount: deliveries)
        }
    }

    private static func readConsumers(_ input: inout RDBInput, type: UInt8, into group: ConsumerGroup) throws {
        let n = try input.count(of: "Consumers", minBytesEach: 10)
        var owned = Set<StreamID>(minimumCapacity: group.pending.count)
        for _ in 0..<n {
            let start = input.position
            let name = try input.string()
            let seen = try input.milliseconds()
            let active = type >= RDBType.streamListpacks3 ? try input.milliseconds() : seen
            guard group.consumers[name] == nil else { throw input.error("Duplicate stream consumer", at: start) }
            let consumer = StreamConsumer(name: name, now: seen)
            consumer.activeTime = active
            let pending = try input.count(of: "Consumer pending list", minBytesEach: 16)
            for _ in 0..<pending {
                let idStart = input.position
                let raw = try input.rawStreamID()
                let id = StreamID(raw.ms, raw.seq)
                guard let entry = group.pending[id] else {
                    throw input.error("Consumer's pending entry is not in its group's list", at: idStart)
                }
                guard owned.insert(id).inserted else {
                    throw input.error("Pending entry owned twice", at: idStart)
                }
                entry.consumer = name
                consumer.pending.insert(id)
            }
            group.consumers[name] = consumer
        }
        guard owned.count == group.pending.count else {
            throw input.error("Consumer group has pending entries no consumer owns")
        }
    }
}
