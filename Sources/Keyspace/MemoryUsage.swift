import DequeModule
import RESP

/// MEMORY USAGE's figure: the bytes a key and its value take in Berth's own structures.
///
/// The sizes come from the layouts Berth uses (Swift object headers, the stride of each
/// stored element, hash-table capacities, out-of-line byte arrays), not from Redis's
/// encodings, so the figure is comparable between Berth's keys rather than with
/// redis-server's. As in Redis, a collection's elements are sampled: the first `samples`
/// (0: all) are measured and the average is taken for every element, so the cost stays
/// bounded on large values.
///
/// What is left out: allocator rounding and slack, the consumer groups' pending entries
/// beyond their count times a fixed size, and whatever a module value points to.
extension Entry {
    /// Swift's header on every class instance (isa pointer and reference counts).
    static let objectHeader = 16
    /// The header of a native array, dictionary or set buffer, before its elements.
    static let bufferHeader = 32

    public func estimatedBytes(samples: Int) -> Int {
        let entry = Entry.objectHeader + MemoryLayout<Bytes>.stride + MemoryLayout<Value>.stride + 3 * 8
        let slot = MemoryLayout<UnsafeRawPointer>.stride  // the table's bucket pointing here
        return entry + slot + Entry.outOfLine(key) + Entry.bytes(of: value, samples: samples)
    }

    /// The heap bytes of a byte string beyond its inline storage.
    static func outOfLine(_ b: Bytes) -> Int {
        b.count > Bytes.inlineCapacity ? bufferHeader + b.count : 0
    }

    /// The average over the first `samples` elements (all when 0), times their count.
    static func sampled<S: Sequence>(_ items: S, count: Int, samples: Int, _ size: (S.Element) -> Int) -> Int {
        guard count > 0 else { return 0 }
        var measured = 0, total = 0
        for item in items {
            if samples > 0 && measured == samples { break }
            total += size(item)
            measured += 1
        }
        return measured == 0 ? 0 : total * count / measured
    }

    static func bytes(of value: Value, samples: Int) -> Int {
        let stride = MemoryLayout<Bytes>.stride
        switch value {
        case .string(let s):
            return outOfLine(s)
        case .list(let l):
            return objectHeader + 8 + bufferHeader + stride * l.items.count
                + sampled(l.items, count: l.items.count, samples: samples, outOfLine)
        case .hash(let h):
            // A packed hash holds its bytes in its one buffer.
            return h.storageBytes
                + (h.isPacked ? 0 : sampled(h, count: h.count, samples: samples) { outOfLine($0.key) + outOfLine($0.value) })
        case .set(let s):
            return objectHeader + 8 + bufferHeader + (stride + 1) * s.members.capacity
                + sampled(s.members, count: s.members.count, samples: samples, outOfLine)
        case .zset(let z):
            // Packed: the one buffer. Else the member -> score table, plus the tree's
            // leaves holding each pair again (a member is a shared reference when out of
            // line, so counted once).
            if z.isPacked { return objectHeader + 24 + z.storageBytes }
            let pairs = z.pairs
            return objectHeader + 24 + z.storageBytes + (stride + 8) * z.count * 3 / 2
                + sampled(pairs, count: z.count, samples: samples) { outOfLine($0.0) }
        case .stream(let st):
            let entries = sampled(st.entries, count: st.count, samples: samples) { e in
                MemoryLayout<StreamEntry>.stride + bufferHeader + stride * e.fields.count + e.fields.reduce(0) { $0 + outOfLine($1) }
            }
            let groups = st.groups.values.reduce(0) { sum, g in
                sum + objectHeader + 128 + g.pending.count * 96 + g.consumers.count * 128
            }
            return objectHeader + 64 + bufferHeader + entries + groups
        case .module:
            return objectHeader + 24
        }
    }
}
