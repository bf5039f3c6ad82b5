import RESP
#if canImport(Glibc)
import Glibc
#endif

/// A hash's fields and values, with the part of Dictionary's interface the commands use.
///
/// A small hash is packed, as Redis packs it in a listpack: one byte buffer holding the
/// number of pairs (PackedCount: two bytes, counted afresh past 65,534 as a listpack's are), then field, value, field, value..., each
/// as its length (LEB128) and its bytes, in the order the fields were added. A five-field
/// hash of short strings takes one allocation of about a hundred bytes instead of a hash
/// table of 24-byte slots. Lookups scan the buffer, as Redis's do; past
/// hash-max-listpack-entries pairs, or with a field or value longer than
/// hash-max-listpack-value, the hash becomes a table for good (Redis converts one way too,
/// and OBJECT ENCODING says which: listpack or hashtable).
///
/// Invariant: a packed buffer always starts with the count of the pairs that follow it,
/// and every length prefix is followed by that many bytes.
public struct HashFields: Sequence, ExpressibleByDictionaryLiteral {
    public typealias Element = (key: Bytes, value: Bytes)

    enum Storage {
        case packed(ByteBuffer)
        case table(HashTable)
    }

    /// A large hash's table, in an object of its own: the storage stays one word, and the
    /// lazy-free thread can be handed the table when nothing else holds it.
    final class HashTable {
        var fields: [Bytes: Bytes]
        init(_ fields: [Bytes: Bytes]) { self.fields = fields }
    }
    private(set) var storage: Storage

    /// An empty packed buffer, shared: the first write copies it.
    nonisolated(unsafe) private static let empty = ByteBuffer([0, 0])

    public init() { storage = .packed(HashFields.empty) }

    public init(_ dictionary: [Bytes: Bytes]) {
        self.init()
        for (k, v) in dictionary { updateValue(v, forKey: k) }
    }

    public init(dictionaryLiteral elements: (Bytes, Bytes)...) {
        self.init()
        for (k, v) in elements { updateValue(v, forKey: k) }
    }

    /// Whether the hash is still in its packed form (OBJECT ENCODING's listpack).
    public var isPacked: Bool {
        if case .packed = storage { return true }
        return false
    }

    public var count: Int {
        switch storage {
        case .packed(let b): return HashFields.count(of: b)
        case .table(let t): return t.fields.count
        }
    }

    public var isEmpty: Bool { count == 0 }

    /// Heap bytes of the storage (MEMORY USAGE), the elements' own out-of-line bytes aside.
    public var storageBytes: Int {
        switch storage {
        case .packed(let b): return b.storageBytes
        case .table(let t): return 32 + 32 + (2 * MemoryLayout<Bytes>.stride + 1) * t.fields.capacity
        }
    }

    public subscript(key: Bytes) -> Bytes? {
        get {
            switch storage {
            case .packed(let b): return HashFields.find(key, in: b).map { HashFields.value(at: $0, in: b) }
            case .table(let t): return t.fields[key]
            }
        }
        set {
            if let newValue { updateValue(newValue, forKey: key) } else { removeValue(forKey: key) }
        }
    }

    public func randomElement() -> Element? {
        switch storage {
        case .packed:
            guard count > 0 else { return nil }
            let pick = Int.random(in: 0..<count)
            var it = makeIterator()
            for _ in 0..<pick { _ = it.next() }
            return it.next()
        case .table(let t): return t.fields.randomElement()
        }
    }

    public var keys: [Bytes] { map { $0.key } }
    public var values: [Bytes] { map { $0.value } }

    /// Sets `key` to `value`; returns the value it replaced, nil when the field is new.
    @discardableResult
    public mutating func updateValue(_ value: Bytes, forKey key: Bytes) -> Bytes? {
        guard case .packed(var b) = storage else { return updateTable { $0.updateValue(value, forKey: key) } }
        let limit = EncodingLimits.hashValue.load(ordering: .relaxed)
        if let at = HashFields.find(key, in: b) {
            let old = HashFields.value(at: at, in: b)
            guard value.count <= limit else {
                convertToTable()
                return updateTable { $0.updateValue(value, forKey: key) }
            }
            storage = .packed(HashFields.empty)  // so that `b` is the buffer's only reference
            b.replaceSubrange(at.valueStart..<at.end, with: HashFields.encoded(value))
            storage = .packed(b)
            return old
        }
        guard count(of: b) + 1 <= EncodingLimits.hashEntries.load(ordering: .relaxed), key.count <= limit, value.count <= limit else {
            convertToTable()
            return updateTable { $0.updateValue(value, forKey: key) }
        }
        storage = .packed(HashFields.empty)
        b.append(contentsOf: HashFields.encoded(key) + HashFields.encoded(value))
        HashFields.setCount(count(of: b) + 1, in: &b)
        storage = .packed(b)
        return nil
    }

    /// Removes `key`; returns its value, nil when it was not there.
    @discardableResult
    public mutating func removeValue(forKey key: Bytes) -> Bytes? {
        guard case .packed(var b) = storage else { return updateTable { $0.removeValue(forKey: key) } }
        guard let at = HashFields.find(key, in: b) else { return nil }
        storage = .packed(HashFields.empty)
        let old = HashFields.value(at: at, in: b)
        b.removeSubrange(at.start..<at.end)
        HashFields.setCount(count(of: b) - 1, in: &b)
        storage = .packed(b)
        return old
    }

    /// A large hash's table (nil while packed).
    var tableObject: AnyObject? {
        if case .table(let t) = storage { return t }
        return nil
    }

    /// A large hash's table, when this value holds the only reference to it: what the
    /// lazy-free thread is handed (the value is left empty).
    mutating func takeTableIfLast() -> AnyObject? {
        guard case .table(var t) = storage else { return nil }
        storage = .packed(HashFields.empty)
        return isKnownUniquelyReferenced(&t) ? t : nil
    }

    public func makeIterator() -> Iterator {
        switch storage {
        case .packed(let b): return Iterator(packed: b)
        case .table(let t): return Iterator(table: t.fields.makeIterator())
        }
    }

    public struct Iterator: IteratorProtocol {
        private var packed = ByteBuffer()
        private var offset = HashFields.header
        private var table: Dictionary<Bytes, Bytes>.Iterator?

        init(packed: ByteBuffer) { self.packed = packed }
        init(table: Dictionary<Bytes, Bytes>.Iterator) { self.table = table }

        public mutating func next() -> Element? {
            if table != nil { return table!.next() }
            guard offset < packed.count else { return nil }
            let key = HashFields.string(at: &offset, in: packed)
            let value = HashFields.string(at: &offset, in: packed)
            return (key, value)
        }
    }

    // MARK: the packed form

    private mutating func updateTable<R>(_ body: (inout [Bytes: Bytes]) -> R) -> R {
        guard case .table(var t) = storage else { preconditionFailure("not a table") }
        storage = .packed(HashFields.empty)  // so that `t` is the table's only reference
        if !isKnownUniquelyReferenced(&t) { t = HashTable(t.fields) }
        defer { storage = .table(t) }
        return body(&t.fields)
    }

    private mutating func convertToTable() {
        var t: [Bytes: Bytes] = [:]
        t.reserveCapacity(count + 1)
        for (k, v) in self { t[k] = v }
        storage = .table(HashTable(t))
    }

    /// The first bytes of a packed buffer: its number of pairs.
    static let header = PackedCount.size

    private static func count(of b: ByteBuffer) -> Int {
        PackedCount.read(b) {
            var n = 0, it = Iterator(packed: b)
            while it.next() != nil { n += 1 }
            return n
        }
    }

    private func count(of b: ByteBuffer) -> Int { HashFields.count(of: b) }

    private static func setCount(_ n: Int, in b: inout ByteBuffer) { PackedCount.write(n, to: &b) }

    /// Where one pair sits: the field's length prefix, the value's, and the pair's end.
    struct Pair {
        let start: Int, valueStart: Int, end: Int
    }

    private static func find(_ key: Bytes, in b: ByteBuffer) -> Pair? {
        key.withUnsafeBytes { k in
            b.withUnsafeBytes { raw in
                var i = header
                while i < raw.count {
                    let start = i
                    let n = PackedLength.read(at: &i, in: raw)
                    let matches = n == k.count && (n == 0 || memcmp(raw.baseAddress! + i, k.baseAddress!, n) == 0)
                    i += n
                    let valueStart = i
                    let m = PackedLength.read(at: &i, in: raw)
                    i += m
                    if matches { return Pair(start: start, valueStart: valueStart, end: i) }
                }
                return nil
            }
        }
    }

    private static func value(at pair: Pair, in b: ByteBuffer) -> Bytes {
        var i = pair.valueStart
        return string(at: &i, in: b)
    }

    /// The string whose length prefix is at `offset`; moves `offset` past it.
    fileprivate static func string(at offset: inout Int, in b: ByteBuffer) -> Bytes {
        b.withUnsafeBytes { raw in
            let n = PackedLength.read(at: &offset, in: raw)
            defer { offset += n }
            return Bytes(UnsafeRawBufferPointer(rebasing: raw[offset..<offset + n]))
        }
    }

    private static func encoded(_ s: Bytes) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(s.count + 2)
        PackedLength.append(s.count, to: &out)
        s.withUnsafeBytes { out.append(contentsOf: $0) }
        return out
    }
}
