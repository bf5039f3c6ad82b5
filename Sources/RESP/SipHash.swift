/// SipHash-1-2 (one compression round per word, two finalization rounds) under a key drawn
/// at random once per process: the keyed hash of every `Bytes`, for the key tables and
/// for the Sets and Dictionaries of collection values.
///
/// Why not `Hasher`: it is SipHash-1-3 too, but every hash pays for setting up a generic
/// hasher, buffering bytes and finalizing through calls that do not inline; at several
/// hashes per command (prefetch, lookup, insert) that was a tenth of a pipelined MSET's
/// CPU. A keyed SipHash keeps what matters about Hasher: clients choose the keys and
/// members, and without a secret key they could pick many that share a bucket. Redis makes
/// the same choice (SipHash-1-2 with a random key) for the same reason.
///
/// Inline `Bytes` (up to 22 bytes) are hashed as their three payload words, length byte
/// included, which is injective over inline values and costs three rounds; longer ones as
/// their byte string. No value has both forms, so equal values always hash alike.
@usableFromInline
struct SipHash12 {
    @usableFromInline static let key: (UInt64, UInt64) = {
        var g = SystemRandomNumberGenerator()
        return (g.next(), g.next())
    }()

    @usableFromInline var v0, v1, v2, v3: UInt64

    @inlinable @inline(__always)
    init(seed: Int, key: (UInt64, UInt64) = SipHash12.key) {
        let (k0, k1) = key
        let s = UInt64(bitPattern: Int64(seed))
        v0 = k0 ^ 0x736f_6d65_7073_6575
        v1 = (k1 ^ s) ^ 0x646f_7261_6e64_6f6d
        v2 = k0 ^ 0x6c79_6765_6e65_7261
        v3 = (k1 ^ s) ^ 0x7465_6462_7974_6573
    }

    @inlinable @inline(__always)
    mutating func round() {
        v0 &+= v1; v1 = v1.rotatedLeft(13); v1 ^= v0; v0 = v0.rotatedLeft(32)
        v2 &+= v3; v3 = v3.rotatedLeft(16); v3 ^= v2
        v0 &+= v3; v3 = v3.rotatedLeft(21); v3 ^= v0
        v2 &+= v1; v1 = v1.rotatedLeft(17); v1 ^= v2; v2 = v2.rotatedLeft(32)
    }

    /// `rounds` other than SipHash-1-2's only for checking the code against SipHash-2-4's
    /// published test vectors.
    @inlinable @inline(__always)
    mutating func compress(_ m: UInt64, rounds: Int = 1) {
        v3 ^= m
        for _ in 0..<rounds { round() }
        v0 ^= m
    }

    /// The final block carries the message length in its top byte, as the algorithm says.
    @inlinable @inline(__always)
    mutating func finalize(tail: UInt64, length: Int, rounds: (Int, Int) = (1, 2)) -> Int {
        compress(tail | UInt64(truncatingIfNeeded: length) << 56, rounds: rounds.0)
        v2 ^= 0xff
        for _ in 0..<rounds.1 { round() }
        return Int(bitPattern: UInt(v0 ^ v1 ^ v2 ^ v3))
    }

    @inlinable
    static func hash(words a: UInt64, _ b: UInt64, _ c: UInt64, seed: Int) -> Int {
        var h = SipHash12(seed: seed)
        h.compress(a)
        h.compress(b)
        h.compress(c)
        return h.finalize(tail: 0, length: 24)
    }

    @usableFromInline
    static func hash(_ bytes: UnsafeRawBufferPointer, seed: Int, key: (UInt64, UInt64) = SipHash12.key,
                     rounds: (Int, Int) = (1, 2)) -> Int {
        var h = SipHash12(seed: seed, key: key)
        let n = bytes.count
        var i = 0
        while i + 8 <= n {
            h.compress(UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)), rounds: rounds.0)
            i += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < n {
            tail |= UInt64(bytes[i]) << shift
            shift += 8
            i += 1
        }
        return h.finalize(tail: tail, length: n, rounds: rounds)
    }
}

extension UInt64 {
    @inlinable @inline(__always)
    func rotatedLeft(_ k: UInt64) -> UInt64 { self &<< k | self &>> (64 - k) }
}
