import XCTest
import RESP
@testable import Persistence

final class FormatTests: XCTestCase {
    func testCRC64MatchesRedisCheckValue() {
        XCTAssertEqual(CRC64.checksum(Array("123456789".utf8)), 0xe9c6_d914_c4b8_d9ca)
        // The sliced loop and the byte loop agree on every length and alignment.
        let data = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        for n in [0, 1, 7, 8, 9, 63, 64, 65, 999] {
            var slow: UInt64 = 0
            for b in data[0..<n] { slow = CRC64.update(slow, [b].withUnsafeBytes { $0 }) }
            XCTAssertEqual(CRC64.checksum(Array(data[0..<n])), slow, "length \(n)")
        }
    }

    func testLZFRoundTripsAndRefusesWhatDoesNotShrink() {
        let texts: [[UInt8]] = [
            Array(String(repeating: "abcabcabcabc-hello-", count: 50).utf8),
            Array(repeating: 0, count: 5000),
            (0..<3000).map { UInt8(truncatingIfNeeded: ($0 * $0) >> 3) },
        ]
        for t in texts {
            let packed = t.withUnsafeBytes { LZF.compress($0, limit: t.count - 4) }
            XCTAssertNotNil(packed)
            XCTAssertEqual(packed!.withUnsafeBytes { LZF.decompress($0, length: t.count) }, t)
        }
        var random = SystemRandomNumberGenerator()
        let noise = (0..<200).map { _ in UInt8.random(in: 0...255, using: &random) }
        XCTAssertNil(noise.withUnsafeBytes { LZF.compress($0, limit: noise.count - 4) })
        // Damaged input: a back-reference before the start.
        XCTAssertNil([UInt8]([0x20, 0x05]).withUnsafeBytes { LZF.decompress($0, length: 3) })
    }

    func testStringsAreStoredAsRedisStoresThem() {
        var out = RDBOutput()
        out.string(Bytes("12"))  // int8
        out.string(Bytes("-300"))  // int16
        out.string(Bytes("70000"))  // int32
        out.string(Bytes("012"))  // not canonical: raw
        out.string(Bytes("99999999999"))  // beyond 32 bits: raw
        XCTAssertEqual(out.bytes, [0xC0, 12, 0xC1] + [0xD4, 0xFE] + [0xC2, 0x70, 0x11, 0x01, 0x00]
                       + [3] + Array("012".utf8) + [11] + Array("99999999999".utf8))
        var lengths = RDBOutput()
        lengths.length(63); lengths.length(64); lengths.length(16384); lengths.length(UInt64(1) << 33)
        XCTAssertEqual(lengths.bytes, [63, 0x40, 64, 0x80, 0, 0, 0x40, 0, 0x81, 0, 0, 0, 2, 0, 0, 0, 0])
    }
}
