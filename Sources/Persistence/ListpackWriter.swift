import RESP

/// Builds a listpack, the compact sequence Redis keeps small collections and stream
/// nodes in, and which RDB stores as one string.
///
/// Layout: total bytes (u32 LE), element count (u16 LE, 65535 once it no longer fits),
/// the elements, and a 0xFF terminator. Each element is its encoding byte(s), its data,
/// and its own length again ("backlen", 1 to 5 bytes, readable from the right), so the
/// list can be walked in both directions. Integers take the smallest of seven forms,
/// strings one of three length prefixes.
struct ListpackWriter {
    private(set) var bytes: [UInt8] = [0, 0, 0, 0, 0, 0]
    private var elements = 0

    mutating func append(_ v: Int64) {
        let start = bytes.count
        switch v {
        case 0...127:
            bytes.append(UInt8(v))
        case -4096...4095:
            let u = v < 0 ? (1 << 13) + v : v
            bytes.append(UInt8(u >> 8) | 0xC0)
            bytes.append(UInt8(u & 0xff))
        case -32768...32767:
            bytes.append(0xF1)
            littleEndian(UInt64(bitPattern: v), bytes: 2)
        case -8_388_608...8_388_607:
            bytes.append(0xF2)
            littleEndian(UInt64(bitPattern: v), bytes: 3)
        case Int64(Int32.min)...Int64(Int32.max):
            bytes.append(0xF3)
            littleEndian(UInt64(bitPattern: v), bytes: 4)
        default:
            bytes.append(0xF4)
            littleEndian(UInt64(bitPattern: v), bytes: 8)
        }
        finishElement(start)
    }

    /// A string element; one that is an integer's canonical decimal form is stored as that
    /// integer, as Redis stores it (reading it back gives the same bytes).
    mutating func append(_ s: Bytes) {
        s.withUnsafeBytes { raw in
            if raw.count > 0 && raw.count <= 20, let v = RDBOutput.canonicalInteger(raw) {
                append(v)
                return
            }
            let start = bytes.count
            let n = raw.count
            if n < 64 {
                bytes.append(UInt8(n) | 0x80)
            } else if n < 4096 {
                bytes.append(UInt8(n >> 8) | 0xE0)
                bytes.append(UInt8(n & 0xff))
            } else {
                bytes.append(0xF0)
                littleEndian(UInt64(n), bytes: 4)
            }
            bytes.append(contentsOf: raw)
            finishElement(start)
        }
    }

    /// The finished listpack.
    mutating func finish() -> [UInt8] {
        bytes.append(0xFF)
        let total = UInt32(bytes.count)
        withUnsafeBytes(of: total.littleEndian) { for i in 0..<4 { bytes[i] = $0[i] } }
        let count = UInt16(min(elements, 65535))
        bytes[4] = UInt8(count & 0xff)
        bytes[5] = UInt8(count >> 8)
        return bytes
    }

    private mutating func littleEndian(_ v: UInt64, bytes n: Int) {
        for i in 0..<n { bytes.append(UInt8((v >> (8 * UInt64(i))) & 0xff)) }
    }

    private mutating func finishElement(_ start: Int) {
        let l = UInt64(bytes.count - start)
        if l <= 127 {
            bytes.append(UInt8(l))
        } else if l < 16383 {
            bytes.append(UInt8(l >> 7)); bytes.append(UInt8(l & 127) | 128)
        } else if l < 2_097_151 {
            bytes.append(UInt8(l >> 14)); bytes.append(UInt8((l >> 7) & 127) | 128); bytes.append(UInt8(l & 127) | 128)
        } else if l < 268_435_455 {
            bytes.append(UInt8(l >> 21)); bytes.append(UInt8((l >> 14) & 127) | 128)
            bytes.append(UInt8((l >> 7) & 127) | 128); bytes.append(UInt8(l & 127) | 128)
        } else {
            bytes.append(UInt8(l >> 28)); bytes.append(UInt8((l >> 21) & 127) | 128); bytes.append(UInt8((l >> 14) & 127) | 128)
            bytes.append(UInt8((l >> 7) & 127) | 128); bytes.append(UInt8(l & 127) | 128)
        }
        elements += 1
    }
}
