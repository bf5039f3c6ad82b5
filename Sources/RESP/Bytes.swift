/// A binary-safe byte string: keys, values, arguments.
///
/// Up to 22 bytes live inline (23 bytes of payload, the length in the last one), so most
/// keys and small values cost no allocation and a key lookup no extra cache miss; longer
/// ones share an immutable `[UInt8]`. The inline payload is laid out as
/// (UInt64, UInt64, UInt32, UInt16, UInt8) so that, with the enum's tag byte, a `Bytes`
/// is exactly three words, the same stride as a two-word payload plus tag.
/// Inline padding bytes are always zero, which lets equality compare whole words.
public struct Bytes: Sendable {
    @usableFromInline
    typealias Inline = (UInt64, UInt64, UInt32, UInt16, UInt8)

    /// Unchecked because ManagedBuffer opts out of Sendable; a HeapBytes never changes
    /// once made, so sharing it between threads is safe.
    @usableFromInline
    enum Storage: @unchecked Sendable {
        case small(UInt64, UInt64, UInt32, UInt16, UInt8)
        /// Longer bytes: 20 bytes before the first (HeapBytes, ByteBuffer). One kind of
        /// reference only, so that copying a Bytes is an inline retain, not a call.
        case heap(HeapBytes)
    }

    @usableFromInline var storage: Storage

    public static let inlineCapacity = 22

    @inlinable public init() { storage = .small(0, 0, 0, 0, 0) }

    public init(_ buffer: UnsafeRawBufferPointer) {
        let n = buffer.count
        if n <= Bytes.inlineCapacity {
            var words: Inline = (0, 0, 0, 0, 0)
            withUnsafeMutableBytes(of: &words) { raw in
                if n > 0 { raw.baseAddress!.copyMemory(from: buffer.baseAddress!, byteCount: n) }
            }
            storage = .small(words.0, words.1, words.2, words.3, UInt8(n))
        } else {
            storage = .heap(HeapBytes.make(buffer))
        }
    }

    public init<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
        let array = Array(bytes)
        self = array.withUnsafeBytes { Bytes($0) }
    }

    public init(_ string: String) {
        var s = string
        self = s.withUTF8 { Bytes(UnsafeRawBufferPointer($0)) }
    }

    /// The decimal form of `value` (at most 20 bytes), formatted without a String.
    public init(_ value: Int) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        self = withUnsafeMutableBytes(of: &digits) { raw in
            let start = writeDecimal(value, into: raw)
            return Bytes(UnsafeRawBufferPointer(rebasing: raw[start..<24]))
        }
    }

    /// ASCII-lowercased copy; inline strings are folded eight bytes at a time.
    @inline(__always)
    public func lowercasedASCII() -> Bytes {
        guard case .small(let w0, let w1, let w2, let w3, let n) = storage else { return lowercased() }
        var b = Bytes()
        b.storage = .small(Bytes.foldWord(w0), Bytes.foldWord(w1),
                           UInt32(truncatingIfNeeded: Bytes.foldWord(UInt64(w2))),
                           UInt16(truncatingIfNeeded: Bytes.foldWord(UInt64(w3))), n)
        return b
    }

    /// Sets bit 0x20 in every byte of `w` that is an ASCII capital; other bytes, the zero
    /// padding included, are unchanged.
    @inline(__always)
    static func foldWord(_ w: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let low7 = w & (ones &* 0x7F)
        let atLeastA = low7 &+ ones &* (0x80 - 0x41)
        let aboveZ = low7 &+ ones &* (0x80 - 0x5B)
        let upper = atLeastA & ~aboveZ & ~w & (ones &* 0x80)
        return w | (upper >> 2)
    }

    @inlinable public var count: Int {
        switch storage {
        case .small(_, _, _, _, let n): return Int(truncatingIfNeeded: n)
        case .heap(let h): return Int(h.header)
        }
    }

    @inlinable public var isEmpty: Bool { count == 0 }

    @inlinable
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch storage {
        case .small(let w0, let w1, let w2, let w3, let n):
            // Not `withUnsafeBytes(of: &tuple)`: Swift 6.3's optimizer folds a byte loaded
            // at a constant offset of such a tuple into an undefined value once the body is
            // inlined across modules (`b.withUnsafeBytes { $0[0] } == 40` read garbage in
            // release builds). Stores into a raw temporary are compiled faithfully.
            return try withUnsafeTemporaryAllocation(byteCount: 24, alignment: 8) { raw in
                raw.storeBytes(of: w0, toByteOffset: 0, as: UInt64.self)
                raw.storeBytes(of: w1, toByteOffset: 8, as: UInt64.self)
                raw.storeBytes(of: w2, toByteOffset: 16, as: UInt32.self)
                raw.storeBytes(of: w3, toByteOffset: 20, as: UInt16.self)
                return try body(UnsafeRawBufferPointer(start: raw.baseAddress, count: Int(truncatingIfNeeded: n)))
            }
        case .heap(let h):
            return try h.withUnsafeMutablePointerToElements { try body(UnsafeRawBufferPointer(start: $0, count: Int(h.header))) }
        }
    }

    public var array: [UInt8] { withUnsafeBytes { Array($0) } }

    /// Lossy UTF-8 view, for logs, config values and error messages only.
    public var string: String { withUnsafeBytes { String(decoding: $0, as: UTF8.self) } }

    public subscript(i: Int) -> UInt8 { withUnsafeBytes { $0[i] } }

    public func slice(_ range: Range<Int>) -> Bytes {
        withUnsafeBytes { Bytes(UnsafeRawBufferPointer(rebasing: $0[range])) }
    }

    /// Changes the bytes through `body` in place when this value holds the only reference
    /// to its storage, which is the case for a string taken out of its key's entry
    /// (`Entry.modifyString`): APPEND, SETRANGE and SETBIT then cost what they change, not
    /// a copy of the whole string, and APPEND's growth keeps its room for the next one.
    public mutating func modify<R>(_ body: (inout ByteBuffer) throws -> R) rethrows -> R {
        var buffer: ByteBuffer
        switch storage {
        case .heap(let h): buffer = ByteBuffer(adopting: h)
        case .small: buffer = withUnsafeBytes { ByteBuffer($0) }
        }
        storage = .small(0, 0, 0, 0, 0)  // let go of this value's reference: `buffer` is unique
        defer { self = Bytes(buffer) }
        return try body(&buffer)
    }

    /// The bytes of `buffer`, sharing its storage when they do not fit inline.
    public init(_ buffer: ByteBuffer) {
        if buffer.count <= Bytes.inlineCapacity {
            self = buffer.withUnsafeBytes { Bytes($0) }
        } else {
            storage = .heap(buffer.storage)
        }
    }

    public static func + (a: Bytes, b: Bytes) -> Bytes {
        var out = [UInt8]()
        out.reserveCapacity(a.count + b.count)
        a.withUnsafeBytes { out.append(contentsOf: $0) }
        b.withUnsafeBytes { out.append(contentsOf: $0) }
        return Bytes(out)
    }

    /// ASCII-lowercased copy (command and option names).
    public func lowercased() -> Bytes {
        withUnsafeBytes { raw in
            var copy = Array(raw)
            for i in copy.indices where copy[i] >= 65 && copy[i] <= 90 { copy[i] |= 0x20 }
            return Bytes(copy)
        }
    }

    /// Case-insensitive comparison with an ASCII option name such as "withscores".
    public func equalsIgnoringCase(_ lowercaseASCII: StaticString) -> Bool {
        withUnsafeBytes { raw in
            guard raw.count == lowercaseASCII.utf8CodeUnitCount else { return false }
            let p = lowercaseASCII.utf8Start
            for i in 0..<raw.count {
                var c = raw[i]
                if c >= 65 && c <= 90 { c |= 0x20 }
                if c != p[i] { return false }
            }
            return true
        }
    }
}

/// Writes the decimal form of `value` right-aligned into the 24-byte `raw` and returns
/// the index of its first byte.
@inline(__always)
func writeDecimal(_ value: Int, into raw: UnsafeMutableRawBufferPointer) -> Int {
    var n = value.magnitude
    var i = 24
    repeat {
        i -= 1
        raw[i] = UInt8(truncatingIfNeeded: 48 + n % 10)
        n /= 10
    } while n > 0
    if value < 0 { i -= 1; raw[i] = 45 }
    return i
}

extension Bytes: Hashable {
    @inlinable
    public static func == (a: Bytes, b: Bytes) -> Bool {
        switch (a.storage, b.storage) {
        case let (.small(a0, a1, a2, a3, an), .small(b0, b1, b2, b3, bn)):
            return a0 == b0 && a1 == b1 && a2 == b2 && a3 == b3 && an == bn
        case (.small, _), (_, .small): return false
        default:
            guard a.count == b.count else { return false }
            return a.withUnsafeBytes { px in b.withUnsafeBytes { py in memcmpEqual(px, py) } }
        }
    }

    /// Sets, Dictionaries and `hashValue` (the key tables) ask for this: `SipHash12`, not
    /// a `Hasher`.
    @inlinable
    public func _rawHashValue(seed: Int) -> Int {
        switch storage {
        case let .small(a, b, c, d, n):
            return SipHash12.hash(words: a, b, UInt64(c) | UInt64(d) << 32 | UInt64(n) << 56, seed: seed)
        default:
            return withUnsafeBytes { SipHash12.hash($0, seed: seed) }
        }
    }

    /// Only where a `Bytes` is part of a larger hashed value.
    @inlinable
    public func hash(into hasher: inout Hasher) {
        hasher.combine(_rawHashValue(seed: 0))
    }
}

/// The storage of a `Bytes` longer than fits inline and of a ByteBuffer: one allocation of
/// a 16-byte object header, the 4-byte count (the header) and the bytes, with room for
/// more when the allocator's size class gives it. Values up to 1,004 bytes fit jemalloc's
/// 1,024 class, as Redis's own strings (an sds header of 3 to 5 bytes) do. A Bytes never
/// changes its storage; a ByteBuffer copies it on write unless it holds the only reference.
@usableFromInline
final class HeapBytes: ManagedBuffer<UInt32, UInt8> {
    @usableFromInline
    static func make(_ bytes: UnsafeRawBufferPointer) -> HeapBytes {
        precondition(bytes.count <= Int(UInt32.max), "a string past 4 GB")
        let h = unsafeDowncast(create(minimumCapacity: bytes.count) { _ in UInt32(bytes.count) }, to: HeapBytes.self)
        h.withUnsafeMutablePointerToElements { p in
            if let base = bytes.baseAddress { UnsafeMutableRawPointer(p).copyMemory(from: base, byteCount: bytes.count) }
        }
        return h
    }
}

@usableFromInline
func memcmpEqual(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
    a.count == b.count && (a.count == 0 || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0)
}

extension Bytes: Comparable {
    /// Byte-wise lexicographic order, as Redis compares strings (memcmp, then length).
    public static func < (a: Bytes, b: Bytes) -> Bool {
        a.withUnsafeBytes { pa in
            b.withUnsafeBytes { pb in
                let n = min(pa.count, pb.count)
                let c = n == 0 ? 0 : memcmp(pa.baseAddress!, pb.baseAddress!, n)
                return c != 0 ? c < 0 : pa.count < pb.count
            }
        }
    }
}

extension Bytes: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self.init(value) }
}

extension Bytes: CustomStringConvertible {
    public var description: String { string }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
