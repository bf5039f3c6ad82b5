import Keyspace
import RESP

// How Berth writes each value into an RDB file or DUMP payload.
//
// Collections go in the plain encodings every RDB reader since Redis 2 understands (list,
// set, hash, ZSET_2 with binary scores): the reader picks its own compact encoding for
// small ones, so nothing is lost by not writing listpacks, and Berth keeps no listpacks
// to copy out anyway. Streams have no plain encoding: they are written as Redis 7.0
// writes them (STREAM_LISTPACKS_2), one listpack per node, the nodes split where Berth's
// stream tracked that Redis would have split them.

/// A module data type as a writer needs it: its 64-bit id and its rdb_save.
public protocol RDBSavableModuleType: ModuleValueType {
    var rdbTypeID: UInt64 { get }
    /// Runs the module's rdb_save for `value`, appending what it saves to `out`. False when
    /// the type has no rdb_save (the key cannot be written).
    func save(_ value: ModuleValue, into out: inout RDBOutput) -> Bool
}

extension RDBOutput {
    /// Writes `key`'s record: its expiry (when it has one), its idle time or access
    /// counter (when the policy keeps one), type byte, key and value, in Redis's order.
    /// False (nothing written) for a module value whose type cannot save it.
    @discardableResult
    public mutating func keyRecord(_ key: Bytes, _ value: Value, expireAt: Int64, access: SavedAccess = SavedAccess()) -> Bool {
        let mark = count
        if expireAt != 0 {
            byte(RDBOpcode.expireTimeMs)
            milliseconds(expireAt)
        }
        if let idle = access.idleSeconds {
            byte(RDBOpcode.idle)
            length(UInt64(max(idle, 0)))
        } else if let frequency = access.frequency {
            byte(RDBOpcode.freq)
            byte(UInt8(clamping: frequency))
        }
        let typeAt = count
        byte(0)
        string(key)
        guard let type = valueBody(value) else {
            truncate(to: mark)
            return false
        }
        setByte(at: typeAt, type)
        return true
    }

    /// A DUMP payload: the type byte and value, the RDB version and the CRC64 of both.
    public static func dump(_ value: Value, compress: Bool) -> [UInt8]? {
        var out = RDBOutput(compress: compress)
        out.byte(0)
        guard let type = out.valueBody(value) else { return nil }
        out.setByte(at: 0, type)
        out.dumpFooter()
        return out.bytes
    }

    /// A DUMP payload's end: the RDB version (2 bytes) and the CRC64 of everything before.
    mutating func dumpFooter() {
        byte(UInt8(RDBVersion.written & 0xff))
        byte(UInt8(RDBVersion.written >> 8))
        let crc = bytes.withUnsafeBytes { CRC64.update(0, $0) }
        withUnsafeBytes(of: crc.littleEndian) { raw($0) }
    }

    /// Writes the value's encoding and returns its type byte; nil when it cannot be written.
    mutating func valueBody(_ value: Value) -> UInt8? {
        switch value {
        case .string(let s):
            string(s)
            return RDBType.string
        case .list(let l):
            length(l.items.count)
            for item in l.items { string(item) }
            return RDBType.list
        case .set(let s):
            length(s.members.count)
            for m in s.members { string(m) }
            return RDBType.set
        case .hash(let h):
            length(h.count)
            for (f, v) in h { string(f); string(v) }
            return RDBType.hash
        case .zset(let z):
            length(z.count)
            for (m, score) in z.pairs { string(m); binaryDouble(score) }
            return RDBType.zset2
        case .stream(let s):
            stream(s)
            return RDBType.streamListpacks2
        case .module(let m):
            guard let type = m.type as? any RDBSavableModuleType else { return nil }
            length(type.rdbTypeID)
            guard type.save(m, into: &self) else { return nil }
            length(RDBModuleOpcode.eof)
            return RDBType.module2
        }
    }

    private mutating func stream(_ s: StreamValue) {
        let nodes = s.nodeRuns
        length(nodes.count)
        for run in nodes {
            // The node's key in Redis's radix tree, a 16-byte string.
            let first = s.entries[run.lowerBound].id
            length(16)
            rawStreamID(ms: first.ms, seq: first.seq)
            var lp = ListpackWriter()
            streamNode(s, run, into: &lp)
            let packed = lp.finish()
            packed.withUnsafeBytes { string($0) }
        }
        length(s.count)
        length(s.lastID.ms); length(s.lastID.seq)
        let firstID = s.firstID ?? .zero
        length(firstID.ms); length(firstID.seq)
        length(s.maxDeletedID.ms); length(s.maxDeletedID.seq)
        length(s.entriesAdded)
        length(s.groups.count)
        for (name, g) in s.groups.sorted(by: { $0.key.string < $1.key.string }) {
            string(name)
            length(g.lastDelivered.ms); length(g.lastDelivered.seq)
            length(g.entriesRead.map { UInt64($0) } ?? UInt64.max)
            let pel = g.pendingIDs
            length(pel.count)
            for id in pel {
                let p = g.pending[id]!
                rawStreamID(ms: id.ms, seq: id.seq)
                milliseconds(p.deliveryTime)
                length(p.deliveryCount)
            }
            length(g.consumers.count)
            for (cname, c) in g.consumers {
                string(cname)
                milliseconds(c.seenTime)
                length(c.pending.count)
                for id in c.pending.sorted() { rawStreamID(ms: id.ms, seq: id.seq) }
            }
        }
    }

    /// One node: the master entry (count, deleted, the first entry's field names, 0), then
    /// each entry as flags, ID differences from the master, fields (or only values when
    /// they have the master's field names) and the entry's element count.
    private func streamNode(_ s: StreamValue, _ run: Range<Int>, into lp: inout ListpackWriter) {
        let master = s.entries[run.lowerBound]
        let masterFields = stride(from: 0, to: master.fields.count, by: 2).map { master.fields[$0] }
        lp.append(Int64(run.count))
        lp.append(0)
        lp.append(Int64(masterFields.count))
        for f in masterFields { lp.append(f) }
        lp.append(0)
        for i in run {
            let e = s.entries[i]
            let pairs = e.fields.count / 2
            let same = pairs == masterFields.count && (0..<pairs).allSatisfy { e.fields[2 * $0] == masterFields[$0] }
            lp.append(same ? StreamItemFlag.sameFields : StreamItemFlag.none)
            lp.append(Int64(bitPattern: e.id.ms &- master.id.ms))
            lp.append(Int64(bitPattern: e.id.seq &- master.id.seq))
            if same {
                for k in 0..<pairs { lp.append(e.fields[2 * k + 1]) }
                lp.append(Int64(pairs + 3))
            } else {
                lp.append(Int64(pairs))
                for f in e.fields { lp.append(f) }
                lp.append(Int64(pairs * 2 + 1 + 3))
            }
        }
    }

    mutating func setByte(at i: Int, _ b: UInt8) { withBytes { $0[i] = b } }
    mutating func truncate(to n: Int) { withBytes { $0.removeSubrange(n...) } }
}
