/// Reads an intset, the sorted array of integers Redis keeps small all-integer sets in
/// (RDB type 11).
///
/// Layout, little-endian: the width of every element in bytes (4 bytes: 2, 4 or 8), the
/// element count (4 bytes), then the elements in ascending order. The blob must be exactly
/// that long (checked before anything is read), and the elements strictly ascending (a
/// set has no duplicates).
struct IntsetReader {
    private var input: RDBInput
    private let width: Int
    let count: Int
    private var read = 0
    private var previous: Int64?

    init(_ blob: RDBInput) throws {
        input = blob
        let width = try input.littleEndian(UInt32.self)
        guard width == 2 || width == 4 || width == 8 else {
            throw blob.error("Intset element width \(width) is not 2, 4 or 8")
        }
        let count = UInt64(try input.littleEndian(UInt32.self))
        guard count * UInt64(width) == UInt64(input.remaining) else {
            throw blob.error("Intset of \(count) \(width)-byte elements does not fill its \(blob.count) bytes")
        }
        self.width = Int(width)
        self.count = Int(count)
    }

    /// The next element; nil after the last.
    mutating func next() throws -> Int64? {
        guard read < count else { return nil }
        let start = input.position
        let v = try input.signedLittleEndian(width: width)
        if let previous, v <= previous {
            throw input.error("Intset elements are not in ascending order", at: start)
        }
        previous = v
        read += 1
        return v
    }
}
