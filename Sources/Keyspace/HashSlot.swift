import RESP

/// Redis Cluster key slots: CRC16 (XMODEM) of the key, or of its hash tag, mod 16384.
/// `{user1}.a` and `{user1}.b` share a slot because only "user1" is hashed.
public enum HashSlot {
    public static let count = 16384

    public static func of(_ key: Bytes) -> Int {
        key.withUnsafeBytes { of($0) }
    }

    public static func of(_ raw: UnsafeRawBufferPointer) -> Int {
        if let open = raw.firstIndex(of: UInt8(ascii: "{")) {
            var close = open + 1
            while close < raw.count && raw[close] != UInt8(ascii: "}") { close += 1 }
            if close < raw.count && close > open + 1 {
                return Int(crc16(UnsafeRawBufferPointer(rebasing: raw[(open + 1)..<close]))) & (count - 1)
            }
        }
        return Int(crc16(raw)) & (count - 1)
    }

    public static func crc16(_ raw: UnsafeRawBufferPointer) -> UInt16 {
        var crc: UInt16 = 0
        for byte in raw {
            crc = (crc << 8) ^ table[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)]
        }
        return crc
    }

    private static let table: [UInt16] = (0..<256).map { i -> UInt16 in
        var crc = UInt16(i) << 8
        for _ in 0..<8 {
            crc = (crc & 0x8000) != 0 ? (crc << 1) ^ 0x1021 : crc << 1
        }
        return crc
    }
}
