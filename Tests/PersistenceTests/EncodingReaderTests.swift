import Keyspace
import RESP
import XCTest
@testable import Persistence

/// Every value type and every entry encoding of the compact formats, decoded from
/// handcrafted bytes (through DUMP payloads, which decode one value).
final class EncodingReaderTests: XCTestCase {
    private func stringValue(_ build: (inout RDBBytes) -> Void) -> [UInt8] {
        var b = RDBBytes()
        build(&b)
        return b.bytes
    }

    /// A value that is one string holding `blob` (the compact encodings).
    private func blob(_ bytes: [UInt8]) -> [UInt8] { stringValue { $0.rawString(bytes) } }

    // MARK: Strings

    func testStringEncodings() throws {
        XCTAssertEqual(try plainDump(type: RDBType.string, blob(Array("hello".utf8))), .string("hello"))
        XCTAssertEqual(try plainDump(type: RDBType.string, [0xc0, 0x85]), .string("-123"))
        XCTAssertEqual(try plainDump(type: RDBType.string, [0xc1] + le16(-300)), .string("-300"))
        XCTAssertEqual(try plainDump(type: RDBType.string, [0xc2] + le32(70000)), .string("70000"))
        XCTAssertEqual(try plainDump(type: RDBType.string, [0xc2] + le32(-2_000_000_000)), .string("-2000000000"))
        let text = String(repeating: "compressible text ", count: 40)
        var compressed = RDBOutput(compress: true)
        compressed.string(text)
        XCTAssertEqual(compressed.bytes[0], 0xc3, "LZF form")
        XCTAssertEqual(try plainDump(type: RDBType.string, compressed.bytes), .string(text))
        // The 14, 32 and 64-bit length forms.
        let long = String(repeating: "q", count: 70000)
        XCTAssertEqual(try plainDump(type: RDBType.string, [0x80] + be32(70000) + Array(long.utf8)), .string(long))
        XCTAssertEqual(try plainDump(type: RDBType.string, [0x81] + be64(3) + Array("abc".utf8)), .string("abc"))
        XCTAssertEqual(try plainDump(type: RDBType.string, [0x40, 0x03] + Array("abc".utf8)), .string("abc"))
        // Binary bytes come back exactly.
        let bytes = (0...255).map { UInt8($0) }
        guard case .string(let b) = try RDBReader.value(fromDump: dumpPayload(type: 0, blob(bytes)), target: nil) else {
            return XCTFail("not a string")
        }
        XCTAssertEqual(b.array, bytes)
    }

    // MARK: Plain collections

    func testPlainList() throws {
        let v = stringValue { b in b.length(3); b.rawString("a"); b.string("12"); b.rawString("c") }
        XCTAssertEqual(try plainDump(type: RDBType.list, v), .list(["a", "12", "c"]))
    }

    func testPlainSet() throws {
        let v = stringValue { b in b.length(3); b.rawString("a"); b.string("-5"); b.rawString("c") }
        XCTAssertEqual(try plainDump(type: RDBType.set, v), .set(["a", "-5", "c"]))
        let dup = stringValue { b in b.length(2); b.rawString("a"); b.rawString("a") }
        XCTAssertEqual(rdbError { try plainDump(type: RDBType.set, dup) }?.message, "Bad data format")
    }

    func testPlainSortedSetWithASCIIScores() throws {
        let v = stringValue { b in
            b.length(4)
            b.rawString("a"); b.byte(3); b.raw(Array("1.5".utf8))
            b.rawString("b"); b.byte(254)
            b.rawString("c"); b.byte(255)
            b.rawString("d"); b.byte(5); b.raw(Array("-2e-3".utf8))
        }
        XCTAssertEqual(try plainDump(type: RDBType.zset, v), .zset(["a": 1.5, "b": .infinity, "c": -.infinity, "d": -0.002]))
        let nan = stringValue { b in b.length(1); b.rawString("a"); b.byte(253) }
        XCTAssertNotNil(rdbError { try plainDump(type: RDBType.zset, nan) })
    }

    func testPlainSortedSetWithBinaryScores() throws {
        let v = stringValue { b in
            b.length(2)
            b.rawString("a"); b.raw(le64(Int64(bitPattern: (1.25).bitPattern)))
            b.rawString("b"); b.raw(le64(Int64(bitPattern: (-3e100).bitPattern)))
        }
        XCTAssertEqual(try plainDump(type: RDBType.zset2, v), .zset(["a": 1.25, "b": -3e100]))
    }

    func testPlainHash() throws {
        let v = stringValue { b in b.length(2); b.rawString("f"); b.rawString("v"); b.string("1"); b.string("2") }
        XCTAssertEqual(try plainDump(type: RDBType.hash, v), .hash(["f": "v", "1": "2"]))
        let dup = stringValue { b in b.length(2); b.rawString("f"); b.rawString("v"); b.rawString("f"); b.rawString("w") }
        XCTAssertNotNil(rdbError { try plainDump(type: RDBType.hash, dup) })
    }

    // MARK: Ziplist

    /// One entry of every encoding; the 300-byte string makes the next entry's
    /// previous-size take the 5-byte form.
    static let ziplistEntries: [[UInt8]] = [
        [0x03] + Array("abc".utf8),  // 6-bit length string
        [0x40, 100] + Array(repeating: UInt8(ascii: "x"), count: 100),  // 14-bit length
        [0x80] + be32(300) + Array(repeating: UInt8(ascii: "y"), count: 300),  // 32-bit length
        [0xc0] + le16(-300),  // int16
        [0xd0] + le32(100_000),  // int32
        [0xe0] + le64(-5_000_000_000),  // int64
        [0xf0, 0x90, 0xee, 0xfe],  // int24: -70000
        [0xfe, 0x85],  // int8: -123
        [0xf1],  // immediate 0
        [0xfd],  // immediate 12
    ]
    static let ziplistValues = ["abc", String(repeating: "x", count: 100), String(repeating: "y", count: 300),
                                "-300", "100000", "-5000000000", "-70000", "-123", "0", "12"]

    func testZiplistEveryEntryEncoding() throws {
        let zl = ziplist(Self.ziplistEntries)
        XCTAssertEqual(try plainDump(type: RDBType.listZiplist, blob(zl)), .list(Self.ziplistValues))
        // Count 65535: "count them".
        XCTAssertEqual(try plainDump(type: RDBType.listZiplist, blob(ziplist(Self.ziplistEntries, countOverride: 65535))),
                       .list(Self.ziplistValues))
    }

    func testZiplistHeaderChecks() throws {
        var zl = ziplist(Self.ziplistEntries)
        // Wrong count.
        XCTAssertNotNil(rdbError { try plainDump(type: RDBType.listZiplist, self.blob(ziplist(Self.ziplistEntries, countOverride: 3))) })
        // Total bytes not the blob's size.
        var wrongTotal = zl
        wrongTotal[0] &+= 1
        XCTAssertNotNil(rdbError { try plainDump(type: RDBType.listZiplist, self.blob(wrongTotal)) })
        // Tail offset not the last entry.
        var wrongTail = zl
        wrongTail[4] &+= 1
        XCTAssertNotNil(rdbError { try plainDump(type: RDBType.listZiplist, self.blob(wrongTail)) })
        // A previous-size that does not match.
        var wrongPrevlen = zl
        wrongPrevlen[10 + 1 + 4] = 9  // the second entry's prevlen (the first is 1 + 4 bytes)
        XCTAssertNotNil(rdbError { try plainDump(type: RDBType.listZiplist, self.blob(wrongPrevlen)) })
        // An unknown encoding byte.
        let bad = ziplist([[0xc1, 0, 0]])
        XCTAssertNotNil(rdbError { try plainDump(type: RDBType.listZiplist, self.blob(bad)) })
        // A string running past the end.
        zl = ziplist([[0x05] + Array("ab".utf8)])
        XCTAssertNotNil(rdbError { try plainDump(type: RDBType.listZiplist, self.blob(zl)) })
    }

    func testZiplistHashAndSortedSet() throws {
        let hash = ziplist([[0x01, UInt8(ascii: "f")], [0xc0] + le16(1000), [0xf2], [0x02] + Array("vv".utf8)])
        XCTAssertEqual(try plainDump(type: RDBType.hashZiplist, blob(hash)), .hash(["f": "1000", "1": "vv"]))
        let zset = ziplist([[0x01, UInt8(ascii: "a")], [0xf3], [0x01, UInt8(ascii: "b")], [0x03] + Array("2.5".utf8),
                            [0x01, UInt8(ascii: "c")], [0x04] + Array("-inf".utf8)])
        XCTAssertEqual(try plainDump(type: RDBType.zsetZiplist, blob(zset)), .zset(["a": 2, "b": 2.5, "c": -.infinity]))
        let odd = ziplist([[0x01, UInt8(ascii: "f")]])
        XCTAssertNotNil(rdbError { try plainDump(type: RDBType.hashZiplist, self.blob(odd)) })
    }

    func testQuicklistOfZiplists() throws {
        let v = stringValue { b in
            b.length(2)
            b.rawString(ziplist(Array(Self.ziplistEntries[0..<4])))
            b.rawString(ziplist(Array(Self.ziplistEntries[4...])))
        }
        XCTAssertEqual(try plainDump(type: RDBType.listQuicklist, v), .list(Self.ziplistValues))
    }

    // MARK: Listpack

    static let listpackElements: [[UInt8]] = [
        [0x05],  // 7-bit unsigned: 5
        lpString("abc"),  // 6-bit length string
        [0xc0 | 0x1c, 0x18],  // 13-bit: -1000
        [0xc0 | 0x0f, 0xa0],  // 13-bit: 4000
        [0xe0, 200] + Array(repeating: UInt8(ascii: "z"), count: 200),  // 12-bit length string
        [0xf0] + le32(5000) + Array(repeating: UInt8(ascii: "w"), count: 5000),  // 32-bit length string
        [0xf1] + le16(-20000),  // int16
        [0xf2, 0xc0, 0xb4, 0xb3],  // int24: -5000000
        [0xf3] + le32(2_000_000_000),  // int32
        [0xf4] + le64(-9_000_000_000_000_000_000),  // int64
    ]
    static let listpackValues = ["5", "abc", "-1000", "4000", String(repeating: "z", count: 200),
                                 String(repeating: "w", count: 5000), "-20000", "-5000000", "2000000000",
                                 "-9000000000000000000"]

    func testListpackEveryElementEncoding() throws {
        // The builder's multi-byte back-lengths, spelled out once.
        XCTAssertEqual(backLength(202), [0x01, 0xca])
        XCTAssertEqual(backLength(5005), [39, 141])
        let lp = listpack(Self.listpackElements)
        let v = stringValue { b in b.length(1); b.length(2); b.rawString(lp) }
        XCTAssertEqual(try plainDump(type: RDBType.listQuicklist2, v), .list(Self.listpackValues))
        let unknownCount = stringValue { b in b.length(1); b.length(2); b.rawString(listpack(Self.listpackElements, countOverride: 65535)) }
        XCTAssertEqual(try plainDump(type: RDBType.listQuicklist2, unknownCount), .list(Self.listpackValues))
    }

    func testListpackChecks() throws {
        func list(_ lp: [UInt8]) -> [UInt8] { stringValue { b in b.length(1); b.length(2); b.rawString(lp) } }
        let good = listpack([lpString("ab"), [0x07]])
        XCTAssertEqual(try plainDump(type: RDBType.listQuicklist2, list(good)), .list(["ab", "7"]))
        var wrongBackLength = good
        wrongBackLength[6 + 3] = 2
        XCTAssertNotNil(rdbError { try plainDump(type: RDBType.listQuicklist2, list(wrongBackLength)) })
        var wrongTotal = good
        wrongTotal[0] &+= 1
        XCTAssertNotNil(rdbError { try plainDump(type: RDBType.listQuicklist2, list(wrongTotal)) })
        XCTAssertNotNil(rdbError { try plainDump(type: RDBType.listQuicklist2, list(listpack([lpString("ab")], countOverride: 2))) })
        XCTAssertNotNil(rdbError { try plainDump(type: RDBType.listQuicklist2, list(listpack([[0xf5]]))) })
        // A 32-bit string length far past the end.
        XCTAssertNotNil(rdbError { try plainDump(type: RDBType.listQuicklist2, list(listpack([[0xf0] + le32(1 << 30)]))) })
    }

    func testQuicklist2PlainAndPackedNodes() throws {
        let v = stringValue { b in
            b.length(3)
            b.length(2); b.rawString(listpack([lpString("a"), [0x01]]))
            b.length(1); b.rawString("a large plain element")
            b.length(2); b.rawString(listpack([lpString("z")]))
        }
        XCTAssertEqual(try plainDump(type: RDBType.listQuicklist2, v), .list(["a", "1", "a large plain element", "z"]))
        let badContainer = stringValue { b in b.length(1); b.length(3); b.rawString(listpack([lpString("a")])) }
        XCTAssertNotNil(rdbError { try plainDump(type: RDBType.listQuicklist2, badContainer) })
    }

    func testListpackHashSetAndSortedSet() throws {
        let hash = listpack([lpString("f"), lpString("v"), lpInt(7), lpInt(-70000)])
        XCTAssertEqual(try plainDump(type: RDBType.hashListpack, blob(hash)), .hash(["f": "v", "7": "-70000"]))
        let set = listpack([lpString("m"), lpInt(1), lpInt(-1)])
        XCTAssertEqual(try plainDump(type: RDBType.setListpack, blob(set)), .set(["m", "1", "-1"]))
        let zset = listpack([lpString("a"), lpInt(1), lpString("b"), lpString("2.5"), lpString("c"), lpString("inf")])
        XCTAssertEqual(try plainDump(type: RDBType.zsetListpack, blob(zset)), .zset(["a": 1, "b": 2.5, "c": .infinity]))
        let dupSet = listpack([lpString("m"), lpString("m")])
        XCTAssertNotNil(rdbError { try plainDump(type: RDBType.setListpack, self.blob(dupSet)) })
        let badScore = listpack([lpString("a"), lpString("x1")])
        XCTAssertNotNil(rdbError { try plainDump(type: RDBType.zsetListpack, self.blob(badScore)) })
    }

    // MARK: Intset and zipmap

    func testIntsetWidths() throws {
        let i16 = [2, 0, 0, 0] + le32(3) + le16(-5) + le16(7) + le16(300)
        XCTAssertEqual(try plainDump(type: RDBType.setIntset, blob(i16)), .set(["-5", "7", "300"]))
        let i32 = [4, 0, 0, 0] + le32(2) + le32(-100_000) + le32(100_000)
        XCTAssertEqual(try plainDump(type: RDBType.setIntset, blob(i32)), .set(["-100000", "100000"]))
        let i64 = [8, 0, 0, 0] + le32(2) + le64(-5_000_000_000) + le64(5_000_000_000)
        XCTAssertEqual(try plainDump(type: RDBType.setIntset, blob(i64)), .set(["-5000000000", "5000000000"]))
        let unordered = [2, 0, 0, 0] + le32(2) + le16(7) + le16(-5)
        XCTAssertNotNil(rdbError { try plainDump(type: RDBType.setIntset, self.blob(unordered)) })
        let badWidth = [3, 0, 0, 0] + le32(1) + [1, 2, 3]
        XCTAssertNotNil(rdbError { try plainDump(type: RDBType.setIntset, self.blob(badWidth)) })
        let short = [2, 0, 0, 0] + le32(3) + le16(1)
        XCTAssertNotNil(rdbError { try plainDump(type: RDBType.setIntset, self.blob(short)) })
    }

    func testZipmap() throws {
        let zm: [UInt8] = [0x02, 0x03] + Array("foo".utf8) + [0x03, 0x00] + Array("bar".utf8)
            + [0x05] + Array("hello".utf8) + [0x05, 0x00] + Array("world".utf8) + [0xff]
        XCTAssertEqual(try plainDump(type: RDBType.hashZipmap, blob(zm)), .hash(["foo": "bar", "hello": "world"]))
        // Free bytes after a value, and the 5-byte length form with the count unknown (254).
        let key = Array(repeating: UInt8(ascii: "k"), count: 300)
        let zm2: [UInt8] = [0xfe, 0x01, UInt8(ascii: "a"), 0x02, 0x03] + Array("bc".utf8) + [0, 0, 0]
            + [0xfe] + le32(300) + key + [0x01, 0x00, UInt8(ascii: "v"), 0xff]
        XCTAssertEqual(try plainDump(type: RDBType.hashZipmap, blob(zm2)), .hash(["a": "bc", String(repeating: "k", count: 300): "v"]))
        let wrongCount: [UInt8] = [0x02, 0x01, UInt8(ascii: "a"), 0x01, 0x00, UInt8(ascii: "b"), 0xff]
        XCTAssertNotNil(rdbError { try plainDump(type: RDBType.hashZipmap, self.blob(wrongCount)) })
        XCTAssertNotNil(rdbError { try plainDump(type: RDBType.hashZipmap, self.blob([0x00, 0xff])) })
    }

    // MARK: Streams

    /// A node keyed 1000-5 with master fields f1, f2: entry 1000-5 (same fields), 1000-6
    /// (deleted), 1001-0 (its own field x, and a negative sequence difference).
    static func streamNode() -> [UInt8] {
        listpack([
            lpInt(2), lpInt(1), lpInt(2), lpString("f1"), lpString("f2"), lpInt(0),
            lpInt(2), lpInt(0), lpInt(0), lpString("a1"), lpString("a2"), lpInt(5),
            lpInt(3), lpInt(0), lpInt(1), lpString("b1"), lpString("b2"), lpInt(5),
            lpInt(0), lpInt(1), lpInt(-5), lpInt(1), lpString("x"), lpString("y"), lpInt(6),
        ])
    }

    private func streamValue(type: UInt8, node: [UInt8]? = nil) -> [UInt8] { Self.streamValue(type: type, node: node) }

    static func streamValue(type: UInt8, node: [UInt8]? = nil) -> [UInt8] {
        var b = RDBBytes()
        b.length(1)
        b.rawString(be64(1000) + be64(5))
        b.rawString(node ?? streamNode())
        b.length(2)  // length
        b.length(1001); b.length(3)  // last ID
        if type >= RDBType.streamListpacks2 {
            b.length(1000); b.length(5)  // first ID
            b.length(1000); b.length(6)  // max deleted
            b.length(4)  // entries added
        }
        b.length(1)  // groups
        b.rawString("g1")
        b.length(1000); b.length(5)
        if type >= RDBType.streamListpacks2 { b.length(1) }
        b.length(1)  // PEL
        b.raw(be64(1000) + be64(5)); b.raw(le64(1_700_000_000_000)); b.length(3)
        b.length(2)  // consumers
        b.rawString("alice"); b.raw(le64(1_700_000_000_100))
        if type >= RDBType.streamListpacks3 { b.raw(le64(1_700_000_000_050)) }
        b.length(1); b.raw(be64(1000) + be64(5))
        b.rawString("bob"); b.raw(le64(1_700_000_000_200))
        if type >= RDBType.streamListpacks3 { b.raw(le64(-1)) }
        b.length(0)
        return b.bytes
    }

    func testStreamsOfEachVersion() throws {
        for type in [RDBType.streamListpacks, RDBType.streamListpacks2, RDBType.streamListpacks3] {
            let value = try RDBReader.value(fromDump: dumpPayload(type: type, streamValue(type: type)), target: nil)
            guard case .stream(let s) = value else { return XCTFail("not a stream") }
            XCTAssertEqual(s.entries.map(\.id), [StreamID(1000, 5), StreamID(1001, 0)], "type \(type)")
            XCTAssertEqual(s.entries.map { $0.fields.map(\.string) }, [["f1", "a1", "f2", "a2"], ["x", "y"]])
            XCTAssertEqual(s.lastID, StreamID(1001, 3))
            XCTAssertEqual(s.maxDeletedID, type >= RDBType.streamListpacks2 ? StreamID(1000, 6) : .zero)
            XCTAssertEqual(s.entriesAdded, type >= RDBType.streamListpacks2 ? 4 : 2)
            let g = try XCTUnwrap(s.groups[Bytes("g1")])
            XCTAssertEqual(g.lastDelivered, StreamID(1000, 5))
            XCTAssertEqual(g.entriesRead, 1)
            let pending = try XCTUnwrap(g.pending[StreamID(1000, 5)])
            XCTAssertEqual(pending.consumer, Bytes("alice"))
            XCTAssertEqual(pending.deliveryCount, 3)
            XCTAssertEqual(pending.deliveryTime, 1_700_000_000_000)
            let alice = try XCTUnwrap(g.consumers[Bytes("alice")])
            XCTAssertEqual(alice.pending, [StreamID(1000, 5)])
            XCTAssertEqual(alice.seenTime, 1_700_000_000_100)
            XCTAssertEqual(alice.activeTime, type >= RDBType.streamListpacks3 ? 1_700_000_000_050 : 1_700_000_000_100)
            XCTAssertEqual(g.consumers[Bytes("bob")]?.pending, [])
        }
    }

    func testStreamDamage() throws {
        let type = RDBType.streamListpacks3
        // An element count that does not match the entry.
        let wrongCount = listpack([
            lpInt(1), lpInt(0), lpInt(1), lpString("f"), lpInt(0),
            lpInt(2), lpInt(0), lpInt(0), lpString("v"), lpInt(5),
        ])
        XCTAssertNotNil(rdbError { try RDBReader.value(fromDump: dumpPayload(type: type, self.streamValue(type: type, node: wrongCount)), target: nil) })
        // A master entry without its terminating 0.
        let noTerminator = listpack([lpInt(1), lpInt(0), lpInt(1), lpString("f"), lpInt(9)])
        XCTAssertNotNil(rdbError { try RDBReader.value(fromDump: dumpPayload(type: type, self.streamValue(type: type, node: noTerminator)), target: nil) })
        // A consumer owning an entry that is not in the group's PEL.
        var v = streamValue(type: type)
        let ownedID = be64(1000) + be64(5)
        let last = v.lastRange(of: ownedID)!
        v.replaceSubrange(last, with: be64(1000) + be64(6))
        XCTAssertNotNil(rdbError { try RDBReader.value(fromDump: dumpPayload(type: type, v), target: nil) })
    }

    // MARK: Hashes with field TTLs (Redis 7.4)

    func testHashesWithFieldTTLsLoadAsPlainHashes() throws {
        let future: Int64 = 4_102_444_800_000  // 2100-01-01
        let metadata = stringValue { b in
            b.raw(le64(future))  // minimum expiry
            b.length(3)
            b.length(0); b.rawString("keep"); b.rawString("1")
            b.length(1); b.rawString("ttl"); b.rawString("2")  // expires at the minimum
            b.length(5); b.rawString("later"); b.rawString("3")
        }
        XCTAssertEqual(try plainDump(type: RDBType.hashMetadata, metadata), .hash(["keep": "1", "ttl": "2", "later": "3"]))
        let preGA = stringValue { b in
            b.length(2)
            b.length(1000); b.rawString("expired"); b.rawString("x")  // absolute, 1970
            b.length(UInt64(future)); b.rawString("kept"); b.rawString("y")
        }
        XCTAssertEqual(try plainDump(type: RDBType.hashMetadataPreGA, preGA), .hash(["kept": "y"]))
        let lp = listpack([lpString("f"), lpString("v"), lpInt(0),
                           lpString("old"), lpString("x"), lpInt(1000),
                           lpString("new"), lpString("y"), [0xf4] + le64(future)])
        XCTAssertEqual(try plainDump(type: RDBType.hashListpackEx, le64(future) + blob(lp)), .hash(["f": "v", "new": "y"]))
        XCTAssertEqual(try plainDump(type: RDBType.hashListpackExPreGA, blob(lp)), .hash(["f": "v", "new": "y"]))
    }

    // MARK: Module values

    /// A type that loads one item of each kind and returns them as a string.
    final class EveryItemType: RDBModuleType {
        var sawVersion = -1
        var sawKey: Bytes?
        func load(_ input: RDBModuleInput, encodingVersion: Int) throws -> Value {
            sawVersion = encodingVersion
            sawKey = input.key
            let parts = [String(try input.loadUnsigned()), String(try input.loadSigned()), try input.loadString().string,
                         String(try input.loadDouble()), String(try input.loadFloat())]
            return .string(Bytes(parts.joined(separator: ",")))
        }
    }

    static func moduleID(_ name: String, version: UInt64) -> UInt64 {
        let charset = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        var id: UInt64 = 0
        for c in name { id = id << 6 | UInt64(charset.firstIndex(of: c)!) }
        return id << 10 | version
    }

    private func moduleValue(id: UInt64, end: UInt64 = RDBModuleOpcode.eof) -> [UInt8] { Self.moduleValue(id: id, end: end) }

    static func moduleValue(id: UInt64, end: UInt64 = RDBModuleOpcode.eof) -> [UInt8] {
        var b = RDBBytes()
        b.length(id)
        b.length(2); b.length(42)
        b.length(2); b.length(UInt64(bitPattern: -7))
        b.length(5); b.rawString("hi")
        b.length(4); b.raw(le64(Int64(bitPattern: (2.5).bitPattern)))
        b.length(3); b.raw(le32(Int(Float(0.5).bitPattern)))
        b.length(end)
        return b.bytes
    }

    func testModuleValues() throws {
        let id = Self.moduleID("test-type", version: 3)
        XCTAssertEqual(ModuleValueDecoder.typeName(id: id), "test-type")
        let type = EveryItemType()
        let target = RecordingTarget()
        target.moduleTypes[id] = type
        XCTAssertEqual(try plainDump(type: RDBType.module2, moduleValue(id: id), target: target), .string("42,-7,hi,2.5,0.5"))
        XCTAssertEqual(type.sawVersion, 3)
        // In a file the module sees the key, and an unknown type is named in the error.
        let file = rdbFile(stringValue { b in b.byte(RDBType.module2); b.rawString("mkey"); b.raw(moduleValue(id: id)) })
        let (loaded, _) = try load(file, target: target)
        XCTAssertEqual(loaded.entry("mkey").map { Plain($0.value) }, .string("42,-7,hi,2.5,0.5"))
        XCTAssertEqual(type.sawKey, Bytes("mkey"))
        let unknown = rdbError { try load(file) }
        XCTAssertTrue(unknown?.message.contains("'test-type'") ?? false, unknown?.message ?? "")
        // Not ending with the EOF opcode, and a load of the wrong kind.
        let unterminated = rdbFile(stringValue { b in b.byte(RDBType.module2); b.rawString("mkey"); b.raw(moduleValue(id: id, end: 5)) })
        XCTAssertNotNil(rdbError { try load(unterminated, target: target) })
        final class WrongKind: RDBModuleType {
            func load(_ input: RDBModuleInput, encodingVersion: Int) throws -> Value {
                _ = try? input.loadString()  // a C module ignores the failure...
                return .string(Bytes("x"))  // ...and returns something anyway
            }
        }
        target.moduleTypes[id] = WrongKind()
        XCTAssertNotNil(rdbError { try load(file, target: target) })
    }

    func testDumpPayloadChecks() throws {
        let good = dumpPayload(type: RDBType.string, blob(Array("v".utf8)))
        XCTAssertEqual(Plain(try RDBReader.value(fromDump: good, target: nil)), .string("v"))
        let wrong = "DUMP payload version or checksum are wrong"
        XCTAssertEqual(rdbError { try RDBReader.value(fromDump: Bytes([0, 1, 2]), target: nil) }?.message, wrong)
        var badCRC = good.array
        badCRC[badCRC.count - 1] ^= 1
        XCTAssertEqual(rdbError { try RDBReader.value(fromDump: Bytes(badCRC), target: nil) }?.message, wrong)
        XCTAssertEqual(rdbError { try RDBReader.value(fromDump: dumpPayload(type: 0, self.blob(Array("v".utf8)), version: 13), target: nil) }?.message, wrong)
        XCTAssertEqual(rdbError { try RDBReader.value(fromDump: dumpPayload(type: 0, self.blob(Array("v".utf8)), version: 80), target: nil) }?.message, wrong)
        // A zero CRC is not checked.
        var noCRC = Array(good.array[0..<(good.count - 8)])
        noCRC += [0, 0, 0, 0, 0, 0, 0, 0]
        XCTAssertEqual(Plain(try RDBReader.value(fromDump: Bytes(noCRC), target: nil)), .string("v"))
        // Trailing bytes after the value, an unknown type, an empty collection.
        XCTAssertEqual(rdbError { try RDBReader.value(fromDump: dumpPayload(type: 0, self.blob(Array("v".utf8)) + [0]), target: nil) }?.message, "Bad data format")
        XCTAssertEqual(rdbError { try RDBReader.value(fromDump: dumpPayload(type: 8, [0]), target: nil) }?.message, "Bad data format")
        XCTAssertEqual(rdbError { try RDBReader.value(fromDump: dumpPayload(type: RDBType.list, [0]), target: nil) }?.message, "Bad data format")
    }
}

extension Array where Element: Equatable {
    /// The range of the last occurrence of `pattern`.
    func lastRange(of pattern: [Element]) -> Range<Int>? {
        guard pattern.count <= count else { return nil }
        for start in stride(from: count - pattern.count, through: 0, by: -1) where Array(self[start..<(start + pattern.count)]) == pattern {
            return start..<(start + pattern.count)
        }
        return nil
    }
}
