import RESP

/// Redis Cluster key slots: CRC16 (XMODEM) of the key, or of its hash tag, mod 16384.
/// `{user1}.a` and `{user1}.b` share a slot because only "user1" is hashed.
public enum HashSlot {
    public static let count = 16384

    public static func of(_ key: Bytes) -> Int {
        key.withUnsafeBytes { of($0) }
    }

    public static func of(_ raw: UnsafeRawBufferPointer) -> Int {
        // A plain loop: keys are short, and a call to memchr cost more than the scan.
        var open = 0
        while open < raw.count && raw[open] != UInt8(ascii: "{") { open += 1 }
        if open < raw.count {
            var close = open + 1
            while close < raw.count && raw[close] != UInt8(ascii: "}") { close += 1 }
            if close < raw.count && close > open + 1 {
                return Int(crc16(UnsafeRawBufferPointer(rebasing: raw[(open + 1)..<close]))) & (count - 1)
            }
        }
        return Int(crc16(raw)) & (count - 1)
    }

    /// CRC-16/XMODEM (polynomial 0x1021, as Redis Cluster uses), two bytes per step: the
    /// two table reads of a step do not wait for each other, which halves the chain of
    /// dependent loads that bounds a byte-at-a-time loop.
    public static func crc16(_ raw: UnsafeRawBufferPointer) -> UInt16 {
        let (one, two) = (tables, tables + 256)
        var crc: UInt16 = 0
        var i = 0
        let n = raw.count
        while i + 1 < n {
            let a = Int(UInt8(truncatingIfNeeded: crc >> 8) ^ raw[i])
            let b = Int(UInt8(truncatingIfNeeded: crc) ^ raw[i + 1])
            crc = two[a] ^ one[b]
            i += 2
        }
        if i < n {
            crc = (crc << 8) ^ one[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ raw[i])]
        }
        return crc
    }

    /// `tables[x]`: the CRC of byte x; `tables[256 + x]`: the CRC of byte x followed by a
    /// zero byte. Allocated once, written only by its initializer and never freed, so any
    /// thread may read it, at no reference-count cost.
    private nonisolated(unsafe) static let tables: UnsafePointer<UInt16> = {
        let t = UnsafeMutablePointer<UInt16>.allocate(capacity: 512)
        for i in 0..<256 {
            var crc = UInt16(i) << 8
            for _ in 0..<8 { crc = (crc & 0x8000) != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
            t[i] = crc
        }
        for i in 0..<256 { t[256 + i] = (t[i] << 8) ^ t[Int(t[i] >> 8)] }
        return UnsafePointer(t)
    }()
}
