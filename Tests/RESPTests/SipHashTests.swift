import XCTest
@testable import RESP

final class SipHashTests: XCTestCase {
    /// The algorithm with SipHash-2-4's round counts must give the published test vectors
    /// (key 00..0f, message 00..n-1); SipHash-1-2 differs only in those counts.
    func testMatchesSipHash24Vectors() {
        let key: (UInt64, UInt64) = (0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908)
        let vectors: [Int: UInt64] = [0: 0x726f_db47_dd0e_0e31, 8: 0x93f5_f579_9a93_2462, 15: 0xa129_ca61_49be_45e5]
        for (n, expected) in vectors {
            let message = (0..<n).map { UInt8($0) }
            let h = message.withUnsafeBytes { SipHash12.hash($0, seed: 0, key: key, rounds: (2, 4)) }
            XCTAssertEqual(UInt64(bitPattern: Int64(h)), expected, "message of \(n) bytes")
        }
    }

    /// Inline values hash as their three payload words: the same as the byte-string path
    /// over those 24 bytes.
    func testInlineWordsAreTheByteHashOfThePayload() {
        for text in ["", "a", "key:12345", "exactly-22-bytes-long!"] {
            let b = Bytes(text)
            var payload = [UInt8](repeating: 0, count: 24)
            for (i, byte) in Array(text.utf8).enumerated() { payload[i] = byte }
            payload[23] = UInt8(text.utf8.count)
            let viaBytes = payload.withUnsafeBytes { SipHash12.hash($0, seed: 7) }
            XCTAssertEqual(b._rawHashValue(seed: 7), viaBytes, text)
        }
    }

    func testEqualValuesHashAlikeAndSeedsMatter() {
        let long = String(repeating: "x", count: 100)
        for text in ["", "k", "twenty-two-byte-key!!!", "twenty-three-byte-key!!", long] {
            let a = Bytes(text), b = Bytes(Array(text.utf8))
            XCTAssertEqual(a._rawHashValue(seed: 0), b._rawHashValue(seed: 0))
            XCTAssertEqual(a.hashValue, b.hashValue)
            XCTAssertNotEqual(a._rawHashValue(seed: 1), a._rawHashValue(seed: 2))
        }
        XCTAssertNotEqual(Bytes("key:1").hashValue, Bytes("key:2").hashValue)
    }

    /// Sequential keys, as benchmarks and job queues name them, spread evenly over a
    /// power-of-two table: the fullest of 1024 buckets holds far fewer than twice the mean.
    func testSequentialKeysSpreadOverBuckets() {
        var buckets = [Int](repeating: 0, count: 1024)
        for i in 0..<100_000 { buckets[Bytes("key:\(i)").hashValue & 1023] += 1 }
        XCTAssertLessThan(buckets.max()!, 2 * 100_000 / 1024)
        XCTAssertGreaterThan(buckets.min()!, 100_000 / 1024 / 2)
    }

    func testSetsAndDictionariesOfBytes() {
        var set = Set<Bytes>()
        for i in 0..<10_000 { set.insert(Bytes("member:\(i)")); set.insert(Bytes(String(repeating: "m", count: 30) + "\(i)")) }
        XCTAssertEqual(set.count, 20_000)
        XCTAssertTrue(set.contains(Bytes("member:9999")))
        XCTAssertFalse(set.contains(Bytes("member:10000")))
        let dict = Dictionary(uniqueKeysWithValues: set.map { ($0, $0.count) })
        XCTAssertEqual(dict[Bytes("member:42")], 9)
    }
}

/// A long Bytes is stored one of two ways (exactly sized when read off the wire or a file,
/// in an array when built or grown in place): the same bytes are equal and hash the same
/// whichever way they are stored, and a change in place leaves other copies alone.
final class BytesStorageTests: XCTestCase {
    func testBothLongStoragesAgree() {
        for n in [23, 24, 100, 1000, 1004, 5000] {
            let array = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let fromArray = Bytes(array)
            let fromWire = array.withUnsafeBytes { Bytes($0) }
            XCTAssertEqual(fromArray, fromWire)
            XCTAssertEqual(fromArray._rawHashValue(seed: 3), fromWire._rawHashValue(seed: 3))
            XCTAssertEqual(fromWire.count, n)
            XCTAssertEqual(fromWire.array, array)
            XCTAssertEqual(fromWire[n - 1], array[n - 1])
            XCTAssertFalse(fromWire < fromArray || fromArray < fromWire)
            var grown = fromWire
            grown.modify { $0.append(7) }
            XCTAssertEqual(grown.count, n + 1)
            XCTAssertEqual(fromWire.array, array, "a change in place reached a copy")
            XCTAssertNotEqual(grown, fromWire)
        }
    }

    /// APPEND after APPEND moves the string a logarithmic number of times: the room the
    /// last growth left stays with the stored bytes for the next change.
    func testAppendsGrowGeometrically() {
        var b = Bytes(String(repeating: "x", count: 30))
        let chunk = [UInt8](repeating: 0x61, count: 10)
        var moves = 0
        var last: UnsafeRawPointer? = nil
        for _ in 0..<2000 {
            b.modify { buffer in chunk.withUnsafeBytes { buffer.appendGrowing(contentsOf: $0) } }
            let address = b.withUnsafeBytes { $0.baseAddress }
            if address != last { moves += 1; last = address }
        }
        XCTAssertEqual(b.count, 30 + 20_000)
        XCTAssertLessThan(moves, 30)
        let copy = b
        b.modify { $0[0] = 0x7A }
        XCTAssertEqual(copy[0], 0x78, "a change in place reached a copy")
        XCTAssertEqual(b[0], 0x7A)
    }
}
