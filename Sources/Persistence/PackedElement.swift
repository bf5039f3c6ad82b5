import RESP

/// One element of a compact encoding (ziplist, listpack): the packed formats store a
/// string that looks like an integer as the integer, so an element is either. Strings are
/// slices of the encoded blob, valid while its decoder runs.
enum PackedElement {
    case bytes(UnsafeRawBufferPointer)
    case integer(Int64)

    /// The element as Redis hands it out: integers in their decimal form.
    var asBytes: Bytes {
        switch self {
        case .bytes(let b): return Bytes(b)
        case .integer(let v): return Bytes(Int(v))
        }
    }

    /// The element as an integer: an integer entry, or a string that is exactly one (the
    /// stream fields Redis reads as integers accept both).
    var asInteger: Int64? {
        switch self {
        case .integer(let v): return v
        case .bytes(let b): return b.count <= 20 ? Int64(String(decoding: b, as: UTF8.self)) : nil
        }
    }

    /// The element as a sorted-set score.
    var asDouble: Double? {
        switch self {
        case .integer(let v): return Double(v)
        case .bytes(let b): return parseDouble(b)
        }
    }
}
