/// A byte array with value semantics, copied on write, whose storage is one allocation of
/// a 16-byte object header, a 4-byte count and the bytes (HeapBytes): the storage of every
/// string longer than fits inline (Bytes), and the buffer of a packed hash or sorted set
/// (HashFields, PackedScores).
///
/// Why not `[UInt8]`: an Array's storage spends 32 bytes before its first element (object
/// header, count, capacity and flags). A five-field hash of short strings packs into some
/// seventy bytes, so that header was a third of it, and it pushed a 1,000-byte value from
/// jemalloc's 1,024-byte size class into the 1,280 one. The capacity is whatever the
/// allocator's size class gives (ManagedBuffer asks it). Growth asks for exactly what is
/// needed, as Redis's listpacks are reallocated to their exact size, except through
/// `appendGrowing`, which doubles, as an sds string grown by APPEND does.
///
/// Invariant: `storage.header` (the count) is at most `storage.capacity`, and the bytes
/// before it are initialized.
public struct ByteBuffer: RandomAccessCollection, MutableCollection, RangeReplaceableCollection {
    @usableFromInline var storage: HeapBytes

    /// The storage of every empty buffer: the first write gets one of its own.
    nonisolated(unsafe) private static let empty = ByteBuffer.allocate(0)

    public init() { storage = ByteBuffer.empty }

    public init<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
        self.init()
        append(contentsOf: bytes)
    }

    private static func allocate(_ capacity: Int) -> HeapBytes {
        unsafeDowncast(HeapBytes.create(minimumCapacity: capacity) { _ in 0 }, to: HeapBytes.self)
    }

    /// A buffer over `storage`, which the caller lets go of (Bytes.modify).
    init(adopting storage: HeapBytes) { self.storage = storage }

    public var startIndex: Int { 0 }
    public var endIndex: Int { Int(storage.header) }
    public var count: Int { Int(storage.header) }
    public var capacity: Int { storage.capacity }
    /// The bytes allocated for it (MEMORY USAGE): object header, count, then the bytes.
    public var storageBytes: Int { 16 + MemoryLayout<UInt32>.size + capacity }

    public subscript(i: Int) -> UInt8 {
        get {
            precondition(i >= 0 && i < count, "index out of range")
            return storage.withUnsafeMutablePointerToElements { $0[i] }
        }
        set {
            precondition(i >= 0 && i < count, "index out of range")
            makeUnique(capacity: count)
            storage.withUnsafeMutablePointerToElements { $0[i] = newValue }
        }
    }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try storage.withUnsafeMutablePointerToElements { try body(UnsafeRawBufferPointer(start: $0, count: count)) }
    }

    public func withContiguousStorageIfAvailable<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R? {
        try storage.withUnsafeMutablePointerToElements { try body(UnsafeBufferPointer(start: $0, count: count)) }
    }

    public mutating func reserveCapacity(_ n: Int) { makeUnique(capacity: n) }

    /// One copy of the new bytes at the end (the default would reserve, then append a
    /// byte at a time).
    public mutating func append<C: Collection>(contentsOf bytes: C) where C.Element == UInt8 {
        replaceSubrange(endIndex..<endIndex, with: bytes)
    }

    /// Appends, making room for twice the new length when full: a string grown by APPEND
    /// after APPEND is copied a logarithmic number of times, not once per append.
    public mutating func appendGrowing(contentsOf bytes: UnsafeRawBufferPointer) {
        let needed = count + bytes.count
        if needed > capacity { reserveCapacity(Swift.max(needed, 2 * count)) }
        replaceSubrange(endIndex..<endIndex, with: bytes)
    }

    /// Pads with zero bytes up to `count`: a string that SETRANGE, SETBIT or BITFIELD
    /// writes past its end.
    public mutating func padWithZeros(to count: Int) {
        if self.count < count { append(contentsOf: repeatElement(0, count: count - self.count)) }
    }

    public mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        makeUnique(capacity: count)
        return try storage.withUnsafeMutablePointerToElements { try body(UnsafeMutableRawBufferPointer(start: $0, count: count)) }
    }

    /// One byte more: room grows by half when full, as a buffer built a byte at a time
    /// would otherwise be copied once per byte.
    public mutating func append(_ byte: UInt8) {
        let n = count
        makeUnique(capacity: n < storage.capacity ? n + 1 : n + n / 2 + 16)
        storage.withUnsafeMutablePointerToElements { $0[n] = byte }
        storage.header = UInt32(n + 1)
    }

    public mutating func replaceSubrange<C: Collection>(_ range: Range<Int>, with new: C) where C.Element == UInt8 {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "range out of bounds")
        let added = new.count, old = count
        let total = old - range.count + added
        precondition(total <= Int(UInt32.max), "a packed buffer past 4 GB")
        makeUnique(capacity: total)
        storage.withUnsafeMutablePointerToElements { p in
            // Moves the tail once, then writes the new bytes into the gap.
            let tail = old - range.upperBound
            if tail > 0 {
                UnsafeMutableRawPointer(p + range.lowerBound + added).copyMemory(from: p + range.upperBound, byteCount: tail)
            }
            let copied: Void? = new.withContiguousStorageIfAvailable { src in
                if let base = src.baseAddress { (p + range.lowerBound).update(from: base, count: src.count) }
            }
            if copied == nil {
                var i = range.lowerBound
                for b in new { p[i] = b; i += 1 }
            }
        }
        storage.header = UInt32(total)
    }

    /// Makes the storage this value's own, with room for `minimum` bytes: a shared buffer
    /// is copied, a full one reallocated to the exact size asked for.
    private mutating func makeUnique(capacity minimum: Int) {
        let unique = isKnownUniquelyReferenced(&storage)
        if unique && minimum <= storage.capacity { return }
        let fresh = ByteBuffer.allocate(Swift.max(minimum, count))
        let n = count
        fresh.withUnsafeMutablePointerToElements { dst in
            storage.withUnsafeMutablePointerToElements { src in dst.initialize(from: src, count: n) }
        }
        fresh.header = UInt32(n)
        storage = fresh
    }
}
