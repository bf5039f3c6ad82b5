/// Reads a ziplist, the compact list Redis before 7.0 stored small lists, hashes and
/// sorted sets in (and quicklist nodes in, RDB type 14).
///
/// Layout, all little-endian: total bytes (4), offset of the last entry (4), entry count
/// (2; 65535 means "count them"), the entries, and a 0xFF end byte. Each entry is the
/// previous entry's size (1 byte, or 0xFE and 4 bytes), an encoding, and the data:
///   00llllll                 string, 6-bit length
///   01llllll llllllll        string, 14-bit length (big-endian)
///   10______ + 4 bytes       string, 32-bit length (big-endian)
///   11000000 / 11010000 / 11100000   int16 / int32 / int64
///   11110000                 int24
///   11111110                 int8
///   1111xxxx (0001...1101)   the integer xxxx - 1 (0 to 12), no data
///
/// Every header field is checked against the blob: the total against its size, the tail
/// offset against where the last entry really starts, the count (when not 65535) against
/// the entries, each previous-size against the previous entry. The reader never steps
/// past the end byte.
struct ZiplistReader {
    private var input: RDBInput
    private let declaredCount: Int?
    private let tailOffset: Int
    private var previousEntrySize = 0
    private var previousEntryStart = -1
    private(set) var entriesRead = 0

    private static let headerSize = 10
    private static let end: UInt8 = 0xff
    private static let bigPrevlen: UInt8 = 0xfe

    init(_ blob: RDBInput) throws {
        input = blob
        guard blob.count >= Self.headerSize + 1 else {
            throw blob.error("Ziplist of \(blob.count) bytes is shorter than its header")
        }
        let total = try input.littleEndian(UInt32.self)
        guard total == blob.count else {
            throw blob.error("Ziplist header says \(total) bytes but it has \(blob.count)")
        }
        tailOffset = Int(try input.littleEndian(UInt32.self))
        let count = try input.littleEndian(UInt16.self)
        declaredCount = count == UInt16.max ? nil : Int(count)
    }

    /// An upper bound on the entries, for reserving room (each takes at least 2 bytes).
    var capacityHint: Int { declaredCount ?? (input.remaining / 2) }

    /// The next entry; nil after the last, once the end byte and the header's counts have
    /// been checked.
    mutating func next() throws -> PackedElement? {
        let start = input.position
        let first = try input.peekByte()
        if first == Self.end { return try finish() }
        try checkPreviousSize()
        let element = try readEncodedData()
        previousEntrySize = input.position - start
        previousEntryStart = start
        entriesRead += 1
        return element
    }

    private mutating func checkPreviousSize() throws {
        let start = input.position
        var prevlen = Int(try input.byte())
        if prevlen == Int(Self.bigPrevlen) { prevlen = Int(try input.littleEndian(UInt32.self)) }
        guard prevlen == previousEntrySize else {
            throw input.error("Ziplist entry says the previous one has \(prevlen) bytes, it has \(previousEntrySize)", at: start)
        }
    }

    private mutating func readEncodedData() throws -> PackedElement {
        let start = input.position
        let enc = try input.byte()
        switch enc >> 6 {
        case 0:
            return .bytes(try stringData(Int(enc & 0x3f)))
        case 1:
            return .bytes(try stringData(Int(enc & 0x3f) << 8 | Int(try input.byte())))
        case 2:
            return .bytes(try stringData(Int(try input.bigEndian(UInt32.self))))
        default:
            break
        }
        switch enc {
        case 0xc0: return .integer(Int64(try input.littleEndian(Int16.self)))
        case 0xd0: return .integer(Int64(try input.littleEndian(Int32.self)))
        case 0xe0: return .integer(try input.littleEndian(Int64.self))
        case 0xf0: return .integer(try input.signedLittleEndian(width: 3))
        case 0xfe: return .integer(Int64(Int8(bitPattern: try input.byte())))
        case 0xf1...0xfd: return .integer(Int64(enc & 0x0f) - 1)
        default: throw input.error("Ziplist entry has unknown encoding 0x\(String(enc, radix: 16))", at: start)
        }
    }

    private mutating func stringData(_ n: Int) throws -> UnsafeRawBufferPointer {
        // The end byte must stay after the string.
        guard n < input.remaining else {
            throw input.error("Ziplist string of \(n) bytes runs past the end")
        }
        return try input.bytes(n)
    }

    private mutating func finish() throws -> PackedElement? {
        guard input.remaining == 1 else {
            throw input.error("Ziplist end byte before the end of the ziplist")
        }
        let lastEntry = previousEntryStart < 0 ? Self.headerSize : previousEntryStart
        guard tailOffset == lastEntry else {
            throw input.error("Ziplist tail offset \(tailOffset) is not its last entry (\(lastEntry))")
        }
        if let declaredCount, declaredCount != entriesRead {
            throw input.error("Ziplist header says \(declaredCount) entries but it has \(entriesRead)")
        }
        return nil
    }
}
