/// Reads a listpack, the compact list Redis 7 stores small hashes, sets, sorted sets, list
/// nodes and stream nodes in.
///
/// Layout: total bytes (4, little-endian), element count (2, little-endian; 65535 means
/// "count them"), the elements, and a 0xFF end byte. Each element is an encoding, its
/// data, and a back-length (the size of encoding and data, 1 to 5 bytes, 7 bits each,
/// written so that it can be read backwards from the next element). Encodings:
///   0xxxxxxx                 integer 0...127
///   10llllll                 string, 6-bit length
///   110xxxxx xxxxxxxx        13-bit signed integer (big-endian bits)
///   1110llll llllllll        string, 12-bit length
///   11110000 + 4 bytes       string, 32-bit length (little-endian)
///   11110001/0010/0011/0100  16/24/32/64-bit signed integer, little-endian
///
/// The total is checked against the blob's size, the count (when not 65535) against the
/// elements, and each back-length against its element, which catches most damage early.
struct ListpackReader {
    private var input: RDBInput
    private let declaredCount: Int?
    private(set) var entriesRead = 0

    private static let headerSize = 6
    private static let end: UInt8 = 0xff

    init(_ blob: RDBInput) throws {
        input = blob
        guard blob.count >= Self.headerSize + 1 else {
            throw blob.error("Listpack of \(blob.count) bytes is shorter than its header")
        }
        let total = try input.littleEndian(UInt32.self)
        guard total == blob.count else {
            throw blob.error("Listpack header says \(total) bytes but it has \(blob.count)")
        }
        let count = try input.littleEndian(UInt16.self)
        declaredCount = count == UInt16.max ? nil : Int(count)
    }

    /// An upper bound on the elements, for reserving room (each takes at least 2 bytes).
    var capacityHint: Int { declaredCount ?? (input.remaining / 2) }

    /// The next element; nil after the last, once the end byte and the count are checked.
    mutating func next() throws -> PackedElement? {
        let start = input.position
        if try input.peekByte() == Self.end { return try finish() }
        let element = try readEncodedData()
        try checkBackLength(entrySize: input.position - start, entryStart: start)
        entriesRead += 1
        return element
    }

    /// Reads the next element, which must exist (the fixed parts of stream nodes).
    mutating func required(_ what: String) throws -> PackedElement {
        let start = input.position
        guard let e = try next() else { throw input.error("Listpack ends before its \(what)", at: start) }
        return e
    }

    /// The next element as an integer (stream node fields).
    mutating func requiredInteger(_ what: String) throws -> Int64 {
        let start = input.position
        guard let v = try required(what).asInteger else {
            throw input.error("Listpack \(what) is not an integer", at: start)
        }
        return v
    }

    private mutating func readEncodedData() throws -> PackedElement {
        let start = input.position
        let enc = try input.byte()
        if enc & 0x80 == 0 { return .integer(Int64(enc)) }
        if enc & 0xc0 == 0x80 { return .bytes(try stringData(Int(enc & 0x3f))) }
        if enc & 0xe0 == 0xc0 {
            let raw = Int64(enc & 0x1f) << 8 | Int64(try input.byte())
            return .integer(raw >= 1 << 12 ? raw - (1 << 13) : raw)
        }
        if enc & 0xf0 == 0xe0 { return .bytes(try stringData(Int(enc & 0x0f) << 8 | Int(try input.byte()))) }
        switch enc {
        case 0xf0: return .bytes(try stringData(Int(try input.littleEndian(UInt32.self))))
        case 0xf1: return .integer(try input.signedLittleEndian(width: 2))
        case 0xf2: return .integer(try input.signedLittleEndian(width: 3))
        case 0xf3: return .integer(try input.signedLittleEndian(width: 4))
        case 0xf4: return .integer(try input.signedLittleEndian(width: 8))
        default: throw input.error("Listpack element has unknown encoding 0x\(String(enc, radix: 16))", at: start)
        }
    }

    private mutating func stringData(_ n: Int) throws -> UnsafeRawBufferPointer {
        // Its back-length (at least a byte) and the end byte must stay after the string.
        guard n <= input.remaining - 2 else {
            throw input.error("Listpack string of \(n) bytes runs past the end")
        }
        return try input.bytes(n)
    }

    /// The back-length: the element's size in 7-bit groups, most significant first, every
    /// byte but the first flagged with the high bit.
    private mutating func checkBackLength(entrySize: Int, entryStart: Int) throws {
        let width = entrySize <= 127 ? 1 : entrySize < 16383 ? 2 : entrySize < 2_097_151 ? 3 : entrySize < 268_435_455 ? 4 : 5
        var value = 0
        for i in 0..<width {
            let b = try input.byte()
            guard (b & 0x80 != 0) == (i > 0) else {
                throw input.error("Listpack element's back-length is malformed", at: entryStart)
            }
            value = value << 7 | Int(b & 0x7f)
        }
        guard value == entrySize else {
            throw input.error("Listpack element's back-length \(value) is not its size \(entrySize)", at: entryStart)
        }
    }

    private mutating func finish() throws -> PackedElement? {
        guard input.remaining == 1 else {
            throw input.error("Listpack end byte before the end of the listpack")
        }
        if let declaredCount, declaredCount != entriesRead {
            throw input.error("Listpack header says \(declaredCount) elements but it has \(entriesRead)")
        }
        return nil
    }
}
