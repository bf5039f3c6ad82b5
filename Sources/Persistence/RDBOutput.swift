import RESP

/// Bytes being written in RDB's encodings: lengths, strings (as integers or LZF-compressed
/// where Redis would), times, doubles. A snapshot writes each key into one of these and
/// hands the bytes to the file (SnapshotFile); DUMP writes one value and its footer.
public struct RDBOutput {
    public private(set) var bytes: [UInt8] = []
    /// `rdbcompression`: strings longer than 20 bytes are stored LZF-compressed when that
    /// saves at least four bytes, as Redis does.
    public var compress: Bool

    public init(compress: Bool = true, capacity: Int = 256) {
        self.compress = compress
        bytes.reserveCapacity(capacity)
    }

    public var count: Int { bytes.count }
    public mutating func removeAll() { bytes.removeAll(keepingCapacity: true) }

    public mutating func byte(_ b: UInt8) { bytes.append(b) }

    mutating func withBytes<R>(_ body: (inout [UInt8]) -> R) -> R { body(&bytes) }

    public mutating func raw(_ b: UnsafeRawBufferPointer) { bytes.append(contentsOf: b) }
    public mutating func raw(_ b: [UInt8]) { bytes.append(contentsOf: b) }

    public mutating func length(_ n: UInt64) {
        if n < 1 << 6 {
            bytes.append(UInt8(n))
        } else if n < 1 << 14 {
            bytes.append(UInt8(n >> 8) | 0x40)
            bytes.append(UInt8(n & 0xff))
        } else if n <= UInt64(UInt32.max) {
            bytes.append(RDBLength.bits32)
            withUnsafeBytes(of: UInt32(n).bigEndian) { bytes.append(contentsOf: $0) }
        } else {
            bytes.append(RDBLength.bits64)
            withUnsafeBytes(of: n.bigEndian) { bytes.append(contentsOf: $0) }
        }
    }

    public mutating func length(_ n: Int) { length(UInt64(n)) }

    /// A string, as Redis's rdbSaveRawString stores it: a short decimal integer in its
    /// integer form, a long compressible string LZF-compressed, anything else as is.
    public mutating func string(_ s: Bytes) {
        s.withUnsafeBytes { string($0) }
    }

    public mutating func string(_ s: UnsafeRawBufferPointer) {
        let n = s.count
        if n <= 11, n > 0, let v = RDBOutput.canonicalInteger(s), integer(v) { return }
        if compress && n > 20, let packed = LZF.compress(s, limit: n - 4) {
            bytes.append(RDBLength.encoded << 6 | RDBLength.lzf)
            length(packed.count)
            length(n)
            bytes.append(contentsOf: packed)
            return
        }
        length(n)
        bytes.append(contentsOf: s)
    }

    public mutating func string(_ s: String) {
        var s = s
        s.withUTF8 { string(UnsafeRawBufferPointer($0)) }
    }

    /// Stores `v` as an 8, 16 or 32-bit integer string; false when it needs more bits.
    private mutating func integer(_ v: Int64) -> Bool {
        if v >= -(1 << 7) && v < 1 << 7 {
            bytes.append(RDBLength.encoded << 6 | RDBLength.int8)
            bytes.append(UInt8(bitPattern: Int8(v)))
        } else if v >= -(1 << 15) && v < 1 << 15 {
            bytes.append(RDBLength.encoded << 6 | RDBLength.int16)
            withUnsafeBytes(of: Int16(v).littleEndian) { bytes.append(contentsOf: $0) }
        } else if v >= -(1 << 31) && v < 1 << 31 {
            bytes.append(RDBLength.encoded << 6 | RDBLength.int32)
            withUnsafeBytes(of: Int32(v).littleEndian) { bytes.append(contentsOf: $0) }
        } else {
            return false
        }
        return true
    }

    /// The value of a string that is exactly an integer's decimal form (no sign on zero,
    /// no leading zeros or plus sign): only those may be stored as integers, since
    /// loading prints the integer back.
    static func canonicalInteger(_ s: UnsafeRawBufferPointer) -> Int64? {
        var i = 0
        var negative = false
        if s[0] == UInt8(ascii: "-") {
            negative = true
            i = 1
            guard s.count > 1 else { return nil }
        }
        if s[i] == UInt8(ascii: "0") && (s.count > 1) { return nil }
        var v: Int64 = 0
        while i < s.count {
            let d = s[i]
            guard d >= 48 && d <= 57 else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = negative ? m.subtractingReportingOverflow(Int64(d - 48)) : m.addingReportingOverflow(Int64(d - 48))
            guard !o1 && !o2 else { return nil }
            v = a
            i += 1
        }
        if negative && v == 0 { return nil }
        return v
    }

    /// A time in milliseconds: eight bytes, little-endian.
    public mutating func milliseconds(_ ms: Int64) {
        withUnsafeBytes(of: ms.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// A double as eight IEEE 754 bytes, little-endian (ZSET_2 scores, module doubles).
    public mutating func binaryDouble(_ d: Double) {
        withUnsafeBytes(of: d.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func binaryFloat(_ f: Float) {
        withUnsafeBytes(of: f.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// A stream ID as a radix-tree key: milliseconds then sequence, each 64 bits big-endian.
    public mutating func rawStreamID(ms: UInt64, seq: UInt64) {
        withUnsafeBytes(of: ms.bigEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: seq.bigEndian) { bytes.append(contentsOf: $0) }
    }
}
