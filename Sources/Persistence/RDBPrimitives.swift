import RESP

// The building blocks every RDB structure is made of, read from an RDBInput: lengths (1,
// 2, 5 or 9 bytes, the first byte's two high bits saying which, the fourth form marking a
// specially stored string), strings (raw, as an 8/16/32-bit integer, or LZF-compressed),
// doubles (ASCII in old sorted sets, binary since RDB 8), and times.
//
// Counts read here are checked against the bytes left before anything is sized by them:
// each element of a collection takes at least one byte, so a count larger than what is
// left is damage, found before a loop or an allocation trusts it.

/// LZF's best case: a three-byte back-reference expands to 264 bytes. A compressed string
/// claiming more than this many bytes per compressed byte is damaged, which bounds what is
/// allocated for it.
private let lzfMaxExpansion = 88

extension RDBInput {
    /// A length, or the special encoding (RDBLength.int8...lzf) of the string that follows.
    enum LengthOrEncoding {
        case length(UInt64)
        case encoding(UInt8)
    }

    mutating func lengthOrEncoding() throws -> LengthOrEncoding {
        let start = position
        let first = try byte()
        switch first >> 6 {
        case RDBLength.bits6:
            return .length(UInt64(first & 0x3f))
        case RDBLength.bits14:
            return .length(UInt64(first & 0x3f) << 8 | UInt64(try byte()))
        case RDBLength.encoded:
            return .encoding(first & 0x3f)
        default:
            if first == RDBLength.bits32 { return .length(UInt64(try bigEndian(UInt32.self))) }
            if first == RDBLength.bits64 { return .length(try bigEndian(UInt64.self)) }
            throw error("Unknown length encoding 0x\(String(first, radix: 16))", at: start)
        }
    }

    /// A plain length (a count, an id, a millisecond): the string encodings are an error here.
    mutating func length() throws -> UInt64 {
        let start = position
        guard case .length(let n) = try lengthOrEncoding() else {
            throw error("A string encoding where a length was expected", at: start)
        }
        return n
    }

    /// A length that must fit an Int (database numbers, delivery counts...).
    mutating func intLength(_ what: String) throws -> Int {
        let start = position
        let n = try length()
        guard n <= UInt64(Int.max) else { throw error("\(what) \(n) is out of range", at: start) }
        return Int(n)
    }

    /// The number of elements of a collection, each of which takes at least `minBytesEach`
    /// bytes: a count the remaining bytes cannot hold is damage.
    mutating func count(of what: String, minBytesEach: Int = 1) throws -> Int {
        let start = position
        let n = try length()
        guard n <= UInt64(remaining / minBytesEach) else {
            throw error("\(what) claims \(n) elements but only \(remaining) bytes are left", at: start)
        }
        return Int(n)
    }

    /// A string, handed to `body` as bytes: a raw string as a slice of the input, a
    /// compressed one decompressed, an integer one as its decimal digits.
    mutating func withString<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let start = position
        switch try lengthOrEncoding() {
        case .length(let n):
            guard n <= UInt64(remaining) else {
                throw error("String of \(n) bytes but only \(remaining) bytes are left", at: start)
            }
            return try body(bytes(Int(n)))
        case .encoding(let enc):
            if enc == RDBLength.lzf {
                return try decompressed(startingAt: start).withUnsafeBytes(body)
            }
            return try Bytes(Int(integer(encoding: enc, startingAt: start))).withUnsafeBytes(body)
        }
    }

    /// A string as `Bytes`.
    mutating func string() throws -> Bytes {
        let start = position
        switch try lengthOrEncoding() {
        case .length(let n):
            guard n <= UInt64(remaining) else {
                throw error("String of \(n) bytes but only \(remaining) bytes are left", at: start)
            }
            return Bytes(try bytes(Int(n)))
        case .encoding(let enc):
            if enc == RDBLength.lzf { return Bytes(try decompressed(startingAt: start)) }
            return Bytes(Int(try integer(encoding: enc, startingAt: start)))
        }
    }

    /// A string holding a structure of its own (ziplist, listpack, intset, zipmap), read
    /// through a nested cursor whose errors report offsets in this input.
    mutating func withNestedInput<R>(_ body: (inout RDBInput) throws -> R) throws -> R {
        let origin = self.origin + position
        return try withString { bytes in
            var nested = RDBInput(bytes, origin: origin)
            return try body(&nested)
        }
    }

    /// Skips a string without decoding it (module data nobody loads).
    mutating func skipString() throws {
        let start = position
        switch try lengthOrEncoding() {
        case .length(let n):
            guard n <= UInt64(remaining) else {
                throw error("String of \(n) bytes but only \(remaining) bytes are left", at: start)
            }
            try skip(Int(n))
        case .encoding(let enc):
            if enc == RDBLength.lzf {
                try skip(try lzfLengths(startingAt: start).compressed)
            } else {
                _ = try integer(encoding: enc, startingAt: start)
            }
        }
    }

    private mutating func integer(encoding: UInt8, startingAt start: Int) throws -> Int64 {
        switch encoding {
        case RDBLength.int8: return Int64(Int8(bitPattern: try byte()))
        case RDBLength.int16: return Int64(try littleEndian(Int16.self))
        case RDBLength.int32: return Int64(try littleEndian(Int32.self))
        default: throw error("Unknown string encoding \(encoding)", at: start)
        }
    }

    /// The compressed and decompressed sizes of an LZF string, checked against what is
    /// left and against LZF's best ratio.
    private mutating func lzfLengths(startingAt start: Int) throws -> (compressed: Int, length: Int) {
        let compressed = try length()
        let length = try self.length()
        guard compressed <= UInt64(remaining) else {
            throw error("Compressed string of \(compressed) bytes but only \(remaining) bytes are left", at: start)
        }
        guard compressed > 0, length > 0, length / UInt64(lzfMaxExpansion) <= compressed else {
            throw error("Compressed string sizes \(compressed) -> \(length) are impossible", at: start)
        }
        return (Int(compressed), Int(length))
    }

    private mutating func decompressed(startingAt start: Int) throws -> [UInt8] {
        let (compressed, length) = try lzfLengths(startingAt: start)
        guard let out = LZF.decompress(try bytes(compressed), length: length) else {
            throw error("Invalid LZF compressed string", at: start)
        }
        return out
    }

    /// A sorted-set score as RDB before version 8 stored it: a length byte (253 NaN, 254
    /// +inf, 255 -inf) then that many ASCII characters.
    mutating func asciiDouble() throws -> Double {
        let start = position
        let n = try byte()
        switch n {
        case 253: return .nan
        case 254: return .infinity
        case 255: return -.infinity
        default:
            guard let d = parseDouble(try bytes(Int(n))) else {
                throw error("Invalid double", at: start)
            }
            return d
        }
    }

    /// An IEEE 754 double, little-endian (ZSET_2 scores, module doubles).
    mutating func binaryDouble() throws -> Double {
        Double(bitPattern: try littleEndian(UInt64.self))
    }

    mutating func binaryFloat() throws -> Float {
        Float(bitPattern: try littleEndian(UInt32.self))
    }

    /// A time in milliseconds, eight bytes little-endian (expiries, stream times). Files
    /// before RDB 9 wrote these in the writer's byte order; only little-endian writers'
    /// files are read correctly, as with every other reader on little-endian machines.
    mutating func milliseconds() throws -> Int64 {
        try littleEndian(Int64.self)
    }

    /// A stream ID as a radix-tree key: milliseconds then sequence, 64 bits big-endian each.
    mutating func rawStreamID() throws -> (ms: UInt64, seq: UInt64) {
        (try bigEndian(UInt64.self), try bigEndian(UInt64.self))
    }
}

/// A double written as text (strtod's syntax: decimal, exponent, inf, nan); nil when the
/// text is not one.
func parseDouble(_ text: UnsafeRawBufferPointer) -> Double? {
    guard !text.isEmpty, text.count <= 512 else { return nil }
    return Double(String(decoding: text, as: UTF8.self))
}
