/// Reads a zipmap, the string-to-string map Redis before 2.6 kept small hashes in (RDB
/// type 9; still found in very old files).
///
/// Layout: a count byte (254 or more: "count them"), then for each pair the field's
/// length, the field, the value's length, a byte of free space after the value, the value
/// and that free space; then a 0xFF end byte. A length is one byte below 254, or 254
/// followed by 4 bytes little-endian. The end byte must be the blob's last byte and the
/// count, when given, must match; an empty zipmap is damage.
enum Zipmap {
    private static let bigLength: UInt8 = 254
    private static let end: UInt8 = 255

    static func forEachPair(_ blob: RDBInput, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void) throws {
        var input = blob
        let declared = try input.byte()
        var pairs = 0
        while true {
            let start = input.position
            guard let fieldLength = try length(&input) else { break }
            let field = try data(&input, fieldLength)
            guard let valueLength = try length(&input) else {
                throw input.error("Zipmap field without a value", at: start)
            }
            let free = Int(try input.byte())
            let value = try data(&input, valueLength)
            try input.skip(free)
            try body(field, value)
            pairs += 1
        }
        guard input.isAtEnd else { throw input.error("Zipmap end byte before the end of the zipmap") }
        guard pairs > 0 else { throw blob.error("Empty zipmap") }
        if declared < bigLength && Int(declared) != pairs {
            throw blob.error("Zipmap header says \(declared) pairs but it has \(pairs)")
        }
    }

    /// A length, or nil at the end byte.
    private static func length(_ input: inout RDBInput) throws -> Int? {
        let b = try input.byte()
        if b == end { return nil }
        if b == bigLength { return Int(try input.littleEndian(UInt32.self)) }
        return Int(b)
    }

    private static func data(_ input: inout RDBInput, _ n: Int) throws -> UnsafeRawBufferPointer {
        guard n < input.remaining else { throw input.error("Zipmap string of \(n) bytes runs past the end") }
        return try input.bytes(n)
    }
}
