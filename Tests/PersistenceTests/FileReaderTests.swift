import Foundation
import Keyspace
import RESP
import XCTest
@testable import Persistence

/// The file structure (header, opcodes, checksum, where the image ends) and damaged files.
final class FileReaderTests: XCTestCase {
    static let future: Int64 = 4_102_444_800_000  // 2100-01-01
    static let library = "#!lua name=mylib\nredis.register_function('f', function() return 1 end)"

    /// A file using every opcode: aux fields, a function library, module aux data, two
    /// databases with a resize hint, both expiry forms, idle and frequency, slot info,
    /// and a few keys of different types.
    static func sampleBody() -> [UInt8] {
        var b = RDBBytes()
        b.byte(RDBOpcode.aux); b.rawString("redis-ver"); b.rawString("7.0.15")
        b.byte(RDBOpcode.aux); b.rawString("ctime"); b.string("1700000000")
        b.byte(RDBOpcode.function2); b.rawString(library)
        b.byte(RDBOpcode.moduleAux)
        b.length(EncodingReaderTests.moduleID("auxmodule", version: 1))
        b.length(2); b.length(2)  // when: after the keys
        b.length(2); b.length(99)
        b.length(1); b.length(5)
        b.length(3); b.raw(le32(0))
        b.length(4); b.raw(le64(0))
        b.length(5); b.rawString("module state")
        b.length(0)
        b.byte(RDBOpcode.selectDB); b.length(0)
        b.byte(RDBOpcode.resizeDB); b.length(3); b.length(1)
        b.byte(RDBOpcode.expireTimeMs); b.raw(le64(future))
        b.byte(RDBType.string); b.rawString("k1"); b.rawString("v1")
        b.byte(RDBOpcode.idle); b.length(1234)
        b.byte(RDBOpcode.freq); b.byte(7)
        b.byte(RDBType.list); b.rawString("k2"); b.length(2); b.rawString("a"); b.string("100")
        b.byte(RDBType.setIntset); b.rawString("k3"); b.rawString([2, 0, 0, 0] + le32(2) + le16(1) + le16(2))
        b.byte(RDBOpcode.selectDB); b.length(3)
        b.byte(RDBOpcode.slotInfo); b.length(1234); b.length(1); b.length(1)
        b.byte(RDBOpcode.expireTime); b.raw(le32(2_000_000_000))
        b.byte(RDBType.hash); b.rawString("k4"); b.length(1); b.rawString("f"); b.rawString("v")
        return b.bytes
    }

    func testEveryOpcode() throws {
        let file = rdbFile(Self.sampleBody())
        let (t, summary) = try load(file)
        XCTAssertEqual(summary.version, 10)
        XCTAssertEqual(summary.keys, 4)
        XCTAssertEqual(summary.bytesRead, file.count)
        XCTAssertEqual(t.auxValue("redis-ver"), "7.0.15")
        XCTAssertEqual(t.auxValue("ctime"), "1700000000")
        XCTAssertEqual(t.libraries.map(\.string), [Self.library])
        XCTAssertEqual(t.keys.map { "\($0.key.string)@\($0.db) \($0.expireAt)" },
                       ["k1@0 \(Self.future)", "k2@0 0", "k3@0 0", "k4@3 2000000000000"])
        XCTAssertEqual(t.entry("k2").map { Plain($0.value) }, .list(["a", "100"]))
        XCTAssertEqual(t.entry("k3").map { Plain($0.value) }, .set(["1", "2"]))
        XCTAssertEqual(t.entry("k4", db: 3).map { Plain($0.value) }, .hash(["f": "v"]))
        XCTAssertEqual(t.auxModule.when, 2)
        XCTAssertEqual(t.auxModule.items, ["99", "5", "0.0", "0.0", "module state"])
    }

    func testModuleAuxDataNoModuleCanLoadIsRefused() throws {
        let target = RecordingTarget()
        target.moduleTypes = [:]
        let error = rdbError { try load(rdbFile(Self.sampleBody()), target: target) }
        XCTAssertTrue(error?.message.contains("no matching module 'auxmodule'") ?? false, "\(String(describing: error))")
    }

    func testImageEndsAfterChecksumAndTheRestIsLeft() throws {
        // An AOF with an RDB preamble: commands follow the image.
        let image = rdbFile(Self.sampleBody())
        let (_, summary) = try load(image + Array("*1\r\n$4\r\nPING\r\n".utf8))
        XCTAssertEqual(summary.bytesRead, image.count)
    }

    func testOldVersionsHaveNoChecksumAndZeroMeansUnchecked() throws {
        var b = RDBBytes()
        b.byte(RDBOpcode.selectDB); b.length(0)
        b.byte(RDBType.string); b.rawString("k"); b.rawString("v")
        let v4 = rdbFile(version: 4, b.bytes)
        let (t, summary) = try load(v4 + [1, 2, 3])
        XCTAssertEqual(summary.bytesRead, v4.count)
        XCTAssertEqual(t.keys.count, 1)
        let unchecked = rdbFile(version: 9, b.bytes, checksum: false)
        XCTAssertEqual(try load(unchecked).1.keys, 1)
    }

    func testEmptyCollectionsAreSkipped() throws {
        var b = RDBBytes()
        b.byte(RDBType.list); b.rawString("empty"); b.length(0)
        b.byte(RDBType.string); b.rawString("k"); b.rawString("v")
        let (t, summary) = try load(rdbFile(b.bytes))
        XCTAssertEqual(summary.keys, 1)
        XCTAssertEqual(t.keys.map(\.key.string), ["k"])
    }

    func testFilesThatCannotBeMappedThrowTheirErrno() throws {
        let target = RecordingTarget()
        XCTAssertThrowsError(try RDBReader.loadFile(path: "/nonexistent/dump.rdb", into: target)) { XCTAssertFalse($0 is RDBError, "\($0)") }
        XCTAssertThrowsError(try RDBReader.loadFile(path: "/tmp", into: target)) { XCTAssertFalse($0 is RDBError, "\($0)") }
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("berth-empty-\(UUID().uuidString).rdb")
        FileManager.default.createFile(atPath: empty.path, contents: Data())
        defer { try? FileManager.default.removeItem(at: empty) }
        XCTAssertThrowsError(try RDBReader.loadFile(path: empty.path, into: target)) { XCTAssertTrue($0 is RDBError, "\($0)") }
    }

    func testHeaderChecks() throws {
        XCTAssertEqual(rdbError { try load(Array("NOTRDB0010".utf8)) }?.message, "Wrong signature: not an RDB file")
        XCTAssertTrue(rdbError { try load(Array("VALKEY080".utf8) + [0xff]) }?.message.contains("Valkey 9") ?? false)
        XCTAssertTrue(rdbError { try load(rdbFile(version: 13, [])) }?.message.contains("version 13") ?? false)
        XCTAssertTrue(rdbError { try load(rdbFile(version: 80, [])) }?.message.contains("Valkey 9") ?? false)
        XCTAssertNotNil(rdbError { try load(rdbFile(version: 0, [])) })
        XCTAssertNotNil(rdbError { try load(Array("REDIS00a1".utf8)) })
        XCTAssertNotNil(rdbError { try load([]) })
    }

    func testWrongChecksum() throws {
        var file = rdbFile(Self.sampleBody())
        file[file.count - 3] ^= 0x40
        let e = rdbError { try load(file) }
        XCTAssertTrue(e?.message.contains("checksum") ?? false)
        XCTAssertEqual(e?.offset, file.count - 8)
        // A flipped data byte (in a value) is caught by the checksum too.
        var data = rdbFile(Self.sampleBody())
        let at = data.lastRange(of: Array("v1".utf8))!.lowerBound
        data[at] = UInt8(ascii: "w")
        XCTAssertNotNil(rdbError { try load(data) })
    }

    func testRefusedOpcodesAndTypes() throws {
        XCTAssertEqual(rdbError { try load(rdbFile([RDBOpcode.functionPreGA, 0])) }?.message, "Pre-release function format not supported")
        XCTAssertEqual(rdbError { try load(rdbFile([RDBType.modulePreGA, 1, UInt8(ascii: "k"), 0])) }?.message, "Pre-release module format not supported")
        XCTAssertNotNil(rdbError { try load(rdbFile([8, 1, UInt8(ascii: "k")])) })
        XCTAssertNotNil(rdbError { try load(rdbFile([243])) })
        let t = RecordingTarget()
        t.refuseLibraries = true
        XCTAssertNotNil(rdbError { try load(rdbFile(Self.sampleBody()), target: t) })
    }

    func testLengthsLargerThanTheFile() throws {
        // A string claiming 2^32 bytes, a list claiming 2^40 elements, an LZF string
        // claiming more than LZF can expand to: each refused before anything is allocated.
        let hugeString: [UInt8] = [RDBType.string, 1, UInt8(ascii: "k"), 0x80] + be32(Int(UInt32.max)) + Array("abc".utf8)
        XCTAssertTrue(rdbError { try load(rdbFile(hugeString)) }?.message.contains("bytes are left") ?? false)
        let hugeList: [UInt8] = [RDBType.list, 1, UInt8(ascii: "k"), 0x81] + be64(1 << 40) + [1, UInt8(ascii: "a")]
        XCTAssertTrue(rdbError { try load(rdbFile(hugeList)) }?.message.contains("claims") ?? false)
        let hugeLZF: [UInt8] = [RDBType.string, 1, UInt8(ascii: "k"), 0xc3, 2, 0x80] + be32(1 << 30) + [0, 0]
        XCTAssertNotNil(rdbError { try load(rdbFile(hugeLZF)) })
        let hugeZiplist: [UInt8] = [RDBType.listZiplist, 1, UInt8(ascii: "k"), 0x80] + be32(1 << 31)
        XCTAssertNotNil(rdbError { try load(rdbFile(hugeZiplist)) })
    }

    /// A file with every value type, for the damage tests below.
    static func richFile() -> [UInt8] {
        var b = RDBBytes()
        b.raw(sampleBody())
        b.byte(RDBType.listQuicklist2); b.rawString("ql"); b.length(2)
        b.length(2); b.rawString(listpack(EncodingReaderTests.listpackElements.filter { $0.count < 100 }))
        b.length(1); b.rawString("plain node")
        b.byte(RDBType.listQuicklist); b.rawString("zl"); b.length(1)
        b.rawString(ziplist(EncodingReaderTests.ziplistEntries.filter { $0.count < 100 }))
        b.byte(RDBType.zset2); b.rawString("z"); b.length(1); b.rawString("m"); b.raw(le64(Int64(bitPattern: (1.5).bitPattern)))
        b.byte(RDBType.zsetListpack); b.rawString("zl2"); b.rawString(listpack([lpString("a"), lpInt(1), lpString("b"), lpString("2.5")]))
        b.byte(RDBType.hashZipmap); b.rawString("zm")
        b.rawString([0x01, 0x01, UInt8(ascii: "a"), 0x02, 0x01] + Array("bc".utf8) + [0, 0xff])
        var lzf = RDBOutput(compress: true)
        lzf.string(String(repeating: "compress me ", count: 10))
        b.byte(RDBType.string); b.rawString("lzf"); b.raw(lzf.bytes)
        b.byte(RDBType.streamListpacks3); b.rawString("stream"); b.raw(EncodingReaderTests.streamValue(type: RDBType.streamListpacks3))
        b.byte(RDBType.module2); b.rawString("module"); b.raw(EncodingReaderTests.moduleValue(id: moduleID))
        return b.bytes
    }

    static let moduleID = EncodingReaderTests.moduleID("test-type", version: 3)

    /// A target that knows the test module type.
    static func moduleTarget() -> RecordingTarget {
        let t = RecordingTarget()
        t.moduleTypes[moduleID] = EncodingReaderTests.EveryItemType()
        return t
    }

    func testTruncationAtEveryByteThrows() throws {
        let file = rdbFile(Self.richFile())
        XCTAssertEqual(try load(file, target: Self.moduleTarget()).1.keys, 12)
        for n in 0..<file.count {
            XCTAssertNotNil(rdbError { try load(Array(file[0..<n]), target: Self.moduleTarget()) }, "truncated to \(n) bytes")
        }
    }

    /// Single-byte damage anywhere (checksum off, so the parser itself must cope): the
    /// load either fails with an RDBError or succeeds, and never crashes.
    func testDamagedBytesNeverCrash() throws {
        let file = rdbFile(Self.richFile(), checksum: false)
        var rng = SplitMix64(seed: 42)
        var failures = 0
        for i in 0..<file.count * 8 {
            var damaged = file
            let at = 9 + Int(rng.next() % UInt64(file.count - 9 - 9))
            damaged[at] = i % 2 == 0 ? UInt8(truncatingIfNeeded: rng.next()) : damaged[at] ^ (1 << UInt8(rng.next() % 8))
            do {
                _ = try load(damaged, target: Self.moduleTarget())
            } catch is RDBError {
                failures += 1
            }
        }
        XCTAssertGreaterThan(failures, 0)
        // The same for DUMP payloads (CRC zero: unchecked) of the structured types.
        for value in [(RDBType.streamListpacks3, EncodingReaderTests.streamValue(type: RDBType.streamListpacks3)),
                      (RDBType.module2, EncodingReaderTests.moduleValue(id: Self.moduleID))] {
            for _ in 0..<2000 {
                var damaged = value.1
                let at = Int(rng.next() % UInt64(damaged.count))
                damaged[at] = UInt8(truncatingIfNeeded: rng.next())
                let payload = Bytes([value.0] + damaged + le16(10) + le64(0))
                do {
                    _ = try RDBReader.value(fromDump: payload, target: Self.moduleTarget())
                } catch is RDBError {}
            }
        }
    }
}

/// A small deterministic generator, so damage tests are repeatable.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
