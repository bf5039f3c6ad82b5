import Synchronization
import RESP

/// The name OBJECT ENCODING gives a value: the encoding Redis would use for the same
/// contents under the same `*-max-listpack-*` settings. Berth keeps one representation
/// per type (KeyTable entries, Swift collections), so this reports Redis's choice rather
/// than a layout of Berth's (hashes aside); tools and tests that ask get the answer they know.
///
/// Redis converts one way (a hash that grew past the limits stays a hashtable after it
/// shrinks). Hashes are packed as Redis packs them (HashFields.swift) and sorted sets
/// are packed as Redis packs them too (PackedScores.swift), so for
/// those two the name is exact; for lists and sets it is derived from the contents now.
public enum EncodingLimits {
    public static let hashEntries = Atomic<Int>(512)
    public static let hashValue = Atomic<Int>(64)
    public static let zsetEntries = Atomic<Int>(128)
    public static let zsetValue = Atomic<Int>(64)
    public static let setIntsetEntries = Atomic<Int>(512)
    public static let setEntries = Atomic<Int>(128)
    public static let setValue = Atomic<Int>(64)
    /// list-max-listpack-size: positive, entries per node; negative, -1..-5 for 4..64 KB.
    public static let listSize = Atomic<Int>(-2)
}

extension Value {
    public var encodingName: String {
        switch self {
        case .string(let s): return Value.stringEncoding(s)
        case .list(let l): return Value.listFitsListpack(l) ? "listpack" : "quicklist"
        case .hash(let h): return h.isPacked ? "listpack" : "hashtable"
        case .set(let s):
            if s.members.count <= EncodingLimits.setIntsetEntries.load(ordering: .relaxed),
               s.members.allSatisfy({ Value.isCanonicalInteger($0) }) {
                return "intset"
            }
            let entries = EncodingLimits.setEntries.load(ordering: .relaxed), size = EncodingLimits.setValue.load(ordering: .relaxed)
            guard s.members.count <= entries else { return "hashtable" }
            return s.members.allSatisfy { $0.count <= size } ? "listpack" : "hashtable"
        case .zset(let z): return z.isPacked ? "listpack" : "skiplist"
        case .stream: return "stream"
        case .module: return "raw"
        }
    }

    /// int for a number Redis would store as a long, embstr up to 44 bytes, raw beyond.
    static func stringEncoding(_ s: Bytes) -> String {
        if s.count <= 20 && isCanonicalInteger(s) { return "int" }
        return s.count <= 44 ? "embstr" : "raw"
    }

    /// Whether Redis's string2ll would take the bytes back exactly (no sign on 0, no
    /// leading zeros or spaces, within 64 bits).
    public static func isCanonicalInteger(_ s: Bytes) -> Bool {
        guard let n = Numbers.int(s) else { return false }
        return s == Bytes(String(n))
    }

    static func listFitsListpack(_ l: ListValue) -> Bool {
        let limit = EncodingLimits.listSize.load(ordering: .relaxed)
        if limit > 0 { return l.items.count <= limit }
        let bytes = 4096 << min(max(-limit - 1, 0), 4)
        var total = 7  // listpack header and end byte
        for item in l.items {
            total += item.count + 2
            if total > bytes { return false }
        }
        return true
    }
}
