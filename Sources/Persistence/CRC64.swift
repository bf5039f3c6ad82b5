/// The CRC-64 Redis puts at the end of RDB files and DUMP payloads: the "Jones"
/// polynomial 0xad93d23594c935a9, reflected input and output, initial value 0, no final
/// xor (check value for "123456789": 0xe9c6d914c4b8d9ca).
///
/// Computed eight bytes at a time (slicing-by-8): snapshots checksum every byte they
/// write, so the byte-at-a-time loop's speed would bound theirs.
public enum CRC64 {
    /// tables[0] is the classic byte table; tables[k][b] is the CRC of byte b followed by
    /// k zero bytes.
    private static let tables: [[UInt64]] = {
        let reflected: UInt64 = 0x95ac_9329_ac4b_c9b5  // 0xad93d23594c935a9, bits reversed
        var t = [[UInt64]](repeating: [UInt64](repeating: 0, count: 256), count: 8)
        for b in 0..<256 {
            var c = UInt64(b)
            for _ in 0..<8 { c = c & 1 == 1 ? (c >> 1) ^ reflected : c >> 1 }
            t[0][b] = c
        }
        for k in 1..<8 {
            for b in 0..<256 { t[k][b] = (t[k - 1][b] >> 8) ^ t[0][Int(t[k - 1][b] & 0xff)] }
        }
        return t
    }()

    public static func update(_ crc: UInt64, _ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var c = crc
        var i = 0
        let n = bytes.count
        tables.withUnsafeBufferPointer { t in
            let t0 = t[0], t1 = t[1], t2 = t[2], t3 = t[3], t4 = t[4], t5 = t[5], t6 = t[6], t7 = t[7]
            while n - i >= 8 {
                let w = c ^ bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self).littleEndian
                c = t7[Int(w & 0xff)] ^ t6[Int((w >> 8) & 0xff)] ^ t5[Int((w >> 16) & 0xff)]
                    ^ t4[Int((w >> 24) & 0xff)] ^ t3[Int((w >> 32) & 0xff)] ^ t2[Int((w >> 40) & 0xff)]
                    ^ t1[Int((w >> 48) & 0xff)] ^ t0[Int(w >> 56)]
                i += 8
            }
            while i < n {
                c = t0[Int((c ^ UInt64(bytes[i])) & 0xff)] ^ (c >> 8)
                i += 1
            }
        }
        return c
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt64 {
        bytes.withUnsafeBytes { update(0, $0) }
    }
}
