import RESP

/// Redis Cluster key slots: CRC16 (XMODEM) of the key, or of its hash tag, mod 16384.
/// `{user1}.a` and `{user1}.b` share a slot because only "user1" is hashed.
public enum HashSlot {
    public static let count = 16384

    public static func of(_ key: Bytes) -> Int {
        key.withUnsafeBytes { of($0) }
    }

    public static func of(_ raw: UnsafeRawBufferPointer) -> Int {
        if let open = firstIndex(of: UInt8(ascii: "{"), in: raw, from: 0),
           let close = firstIndex(of: UInt8(ascii: "}"), in: raw, from: open + 1), close > open + 1 {
            return Int(crc16(UnsafeRawBufferPointer(rebasing: raw[(open + 1)..<close]))) & (count - 1)
        }
        return Int(crc16(raw)) & (count - 1)
    }

    /// Eight bytes per step (a word has the byte iff `word ^ pattern` has a zero byte),
    /// then one at a time: keys are short, and a call to memchr cost more than the scan.
    @inline(__always)
    static func firstIndex(of byte: UInt8, in raw: UnsafeRawBufferPointer, from start: Int) -> Int? {
        let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
        let pattern = ones &* UInt64(byte)
        var i = start
        while i + 8 <= raw.count {
            let w = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) ^ pattern
            let zeros = (w &- ones) & ~w & highs
            if zeros != 0 { return i + zeros.trailingZeroBitCount / 8 }
            i += 8
        }
        while i < raw.count {
            if raw[i] == byte { return i }
            i += 1
        }
        return nil
    }

    /// CRC-16/XMODEM (polynomial 0x1021, as Redis Cluster uses), eight bytes per step
    /// ("slicing by 8"): the eight table reads of a step do not wait for each other, where
    /// a byte-at-a-time loop is one chain of dependent loads.
    public static func crc16(_ raw: UnsafeRawBufferPointer) -> UInt16 {
        let t = tables
        var crc: UInt16 = 0
        var i = 0
        let n = raw.count
        while i + 8 <= n {
            let hi = Int(UInt8(truncatingIfNeeded: crc >> 8) ^ raw[i])
            let lo = Int(UInt8(truncatingIfNeeded: crc) ^ raw[i + 1])
            crc = t[7 * 256 + hi] ^ t[6 * 256 + lo]
                ^ t[5 * 256 + Int(raw[i + 2])] ^ t[4 * 256 + Int(raw[i + 3])]
                ^ t[3 * 256 + Int(raw[i + 4])] ^ t[2 * 256 + Int(raw[i + 5])]
                ^ t[256 + Int(raw[i + 6])] ^ t[Int(raw[i + 7])]
            i += 8
        }
        while i < n {
            crc = (crc << 8) ^ t[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ raw[i])]
            i += 1
        }
        return crc
    }

    /// `tables[k * 256 + x]`: the CRC of byte x followed by k zero bytes (k = 0...7).
    /// Allocated once, written only by its initializer and never freed, so any thread may
    /// read it, at no reference-count cost.
    private nonisolated(unsafe) static let tables: UnsafePointer<UInt16> = {
        let t = UnsafeMutablePointer<UInt16>.allocate(capacity: 8 * 256)
        for i in 0..<256 {
            var crc = UInt16(i) << 8
            for _ in 0..<8 { crc = (crc & 0x8000) != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
            t[i] = crc
        }
        for k in 1..<8 {
            for i in 0..<256 {
                let previous = t[(k - 1) * 256 + i]
                t[k * 256 + i] = (previous << 8) ^ t[Int(previous >> 8)]
            }
        }
        return UnsafePointer(t)
    }()
}
