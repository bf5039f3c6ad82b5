/// A read cursor over bytes in memory: a whole RDB image (usually the read-only mapping of
/// the file), a DUMP payload, or one string inside them (a ziplist, a listpack, an intset).
///
/// Every read checks the bytes left before it touches memory and throws RDBError with the
/// offset where it stopped, so a damaged or truncated input can never make the reader read
/// outside its buffer. This is the only type of the reader that handles raw pointers: the
/// rest asks it for integers and for slices, which stay valid as long as the buffer does
/// (the mapping, or the decompressed copy of a string while its decoder runs).
struct RDBInput {
    private let buffer: UnsafeRawBufferPointer
    private(set) var position = 0
    /// Where `buffer[0]` sits in the outermost input, so that an error inside a nested
    /// string still reports an offset in the file. Inside an LZF-compressed string that
    /// offset is approximate: the string's start plus the offset in its decompressed bytes.
    let origin: Int

    init(_ buffer: UnsafeRawBufferPointer, origin: Int = 0) {
        self.buffer = buffer
        self.origin = origin
    }

    var count: Int { buffer.count }
    var remaining: Int { buffer.count - position }
    var isAtEnd: Bool { position == buffer.count }

    /// An error at the current position.
    func error(_ message: String) -> RDBError { RDBError(message, offset: origin + position) }

    /// An error at `position` of this buffer (where the damaged structure started).
    func error(_ message: String, at position: Int) -> RDBError { RDBError(message, offset: origin + position) }

    /// Throws unless `n` more bytes are there.
    func require(_ n: Int) throws {
        guard n >= 0, n <= remaining else {
            throw error("Unexpected end of data: \(n) bytes needed, \(remaining) left")
        }
    }

    mutating func byte() throws -> UInt8 {
        try require(1)
        let b = buffer[position]
        position += 1
        return b
    }

    func peekByte() throws -> UInt8 {
        try require(1)
        return buffer[position]
    }

    /// The next `n` bytes, without copying them.
    mutating func bytes(_ n: Int) throws -> UnsafeRawBufferPointer {
        try require(n)
        let slice = UnsafeRawBufferPointer(rebasing: buffer[position..<(position + n)])
        position += n
        return slice
    }

    mutating func skip(_ n: Int) throws {
        try require(n)
        position += n
    }

    mutating func littleEndian<T: FixedWidthInteger>(_: T.Type) throws -> T {
        try require(MemoryLayout<T>.size)
        let v = buffer.loadUnaligned(fromByteOffset: position, as: T.self)
        position += MemoryLayout<T>.size
        return T(littleEndian: v)
    }

    mutating func bigEndian<T: FixedWidthInteger>(_: T.Type) throws -> T {
        try require(MemoryLayout<T>.size)
        let v = buffer.loadUnaligned(fromByteOffset: position, as: T.self)
        position += MemoryLayout<T>.size
        return T(bigEndian: v)
    }

    /// A little-endian two's complement integer `width` bytes wide (1 to 8), sign-extended:
    /// the compact encodings store 24-bit integers, which no Swift type matches.
    mutating func signedLittleEndian(width: Int) throws -> Int64 {
        try require(width)
        var v: UInt64 = 0
        for i in 0..<width { v |= UInt64(buffer[position + i]) << (8 * i) }
        position += width
        let unused = UInt64(64 - 8 * width)
        return Int64(bitPattern: v << unused) >> unused
    }

    /// Bytes `range` of the buffer, wherever the cursor is (the checksum's input).
    func slice(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        precondition(range.lowerBound >= 0 && range.upperBound <= buffer.count)
        return UnsafeRawBufferPointer(rebasing: buffer[range])
    }
}
