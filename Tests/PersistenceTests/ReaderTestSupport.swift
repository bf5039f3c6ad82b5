import Keyspace
import RESP
import XCTest
@testable import Persistence

// What the reader tests share: a target that records what it is handed, byte builders
// for handcrafted files, payloads and compact encodings, and a plain form of values
// that XCTAssertEqual can compare.

/// Records every call the reader makes.
final class RecordingTarget: RDBLoadTarget {
    struct Key {
        let key: Bytes
        let value: Value
        let db: Int
        let expireAt: Int64
    }

    var aux: [(Bytes, Bytes)] = []
    var libraries: [Bytes] = []
    var keys: [Key] = []
    var moduleTypes: [UInt64: any RDBModuleType] = [:]
    var refuseLibraries = false
    /// "auxmodule" (FileReaderTests' sample file) reads its aux data into `auxItems`.
    let auxModule = AuxModuleType()

    init() { moduleTypes[EncodingReaderTests.moduleID("auxmodule", version: 1)] = auxModule }

    func aux(_ key: Bytes, _ value: Bytes) { aux.append((key, value)) }

    func functionLibrary(_ source: Bytes) throws {
        struct Refused: Error {}
        if refuseLibraries { throw Refused() }
        libraries.append(source)
    }

    func key(_ key: Bytes, _ value: Value, db: Int, expireAt: Int64, access: SavedAccess) {
        keys.append(Key(key: key, value: value, db: db, expireAt: expireAt))
    }

    func moduleType(id: UInt64) -> (any RDBModuleType)? { moduleTypes[id] }

    func auxValue(_ name: String) -> String? { aux.first { $0.0 == Bytes(name) }?.1.string }

    /// The key named `name` in `db`.
    func entry(_ name: String, db: Int = 0) -> Key? { keys.first { $0.key == Bytes(name) && $0.db == db } }
}

/// A module type with only module-global (aux) data: an unsigned, a signed, a float, a
/// double and a string, the items FileReaderTests' sample saves.
final class AuxModuleType: RDBModuleType {
    var items: [String] = []
    var when = -1
    func load(_ input: RDBModuleInput, encodingVersion: Int) throws -> Value {
        throw RDBError("auxmodule has no values", offset: 0)
    }
    func loadAux(_ input: RDBModuleInput, encodingVersion: Int, when: Int) throws {
        self.when = when
        items = [String(try input.loadUnsigned()), String(try input.loadSigned()), String(try input.loadFloat()),
                 String(try input.loadDouble()), try input.loadString().string]
    }
}

/// A value in a form tests can compare: strings as Swift strings (invalid UTF-8 never
/// occurs in these tests except where bytes are compared directly).
enum Plain: Equatable, CustomStringConvertible {
    case string(String)
    case list([String])
    case set(Set<String>)
    case hash([String: String])
    case zset([String: Double])
    case other(String)

    init(_ v: Value) {
        switch v {
        case .string(let b): self = .string(b.string)
        case .list(let l): self = .list(l.items.map(\.string))
        case .set(let s): self = .set(Set(s.members.map(\.string)))
        case .hash(let h): self = .hash(Dictionary(uniqueKeysWithValues: h.map { ($0.key.string, $0.value.string) }))
        case .zset(let z): self = .zset(Dictionary(uniqueKeysWithValues: z.pairs.map { ($0.0.string, $0.1) }))
        case .stream: self = .other("stream")
        case .module: self = .other("module")
        }
    }

    var description: String {
        switch self {
        case .string(let s): return "string(\(s.prefix(80)))"
        case .list(let l): return "list(\(l.count): \(l.prefix(10)))"
        case .set(let s): return "set(\(s.count): \(s.sorted().prefix(10)))"
        case .hash(let h): return "hash(\(h.count): \(h.sorted { $0.key < $1.key }.prefix(10)))"
        case .zset(let z): return "zset(\(z.count): \(z.sorted { $0.key < $1.key }.prefix(10)))"
        case .other(let s): return s
        }
    }
}

func le16(_ v: Int) -> [UInt8] { withUnsafeBytes(of: UInt16(truncatingIfNeeded: v).littleEndian, Array.init) }
func le32(_ v: Int) -> [UInt8] { withUnsafeBytes(of: UInt32(truncatingIfNeeded: v).littleEndian, Array.init) }
func le64(_ v: Int64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
func be32(_ v: Int) -> [UInt8] { withUnsafeBytes(of: UInt32(truncatingIfNeeded: v).bigEndian, Array.init) }
func be64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.bigEndian, Array.init) }

/// RDB bytes built with the writer's own primitives (lengths and strings are covered by
/// FormatTests) plus raw bytes.
struct RDBBytes {
    var out = RDBOutput(compress: false)

    mutating func byte(_ b: UInt8) { out.byte(b) }
    mutating func raw(_ b: [UInt8]) { out.raw(b) }
    mutating func length(_ n: Int) { out.length(n) }
    mutating func length(_ n: UInt64) { out.length(n) }
    /// A string stored verbatim (no integer or LZF form).
    mutating func rawString(_ b: [UInt8]) { out.length(b.count); out.raw(b) }
    mutating func rawString(_ s: String) { rawString(Array(s.utf8)) }
    /// A string stored the way Redis would (integers as integers).
    mutating func string(_ s: String) { out.string(s) }

    var bytes: [UInt8] { out.bytes }
}

/// A whole file: "REDIS" and the version, `body`, EOF and (from version 5) the CRC64.
func rdbFile(version: Int = 10, _ body: [UInt8], checksum: Bool = true) -> [UInt8] {
    var file = Array("REDIS".utf8) + Array(fourDigits(version).utf8) + body + [RDBOpcode.eof]
    if version >= 5 { file += le64(checksum ? Int64(bitPattern: CRC64.checksum(file)) : 0) }
    return file
}

/// A version as the header writes it: four digits.
func fourDigits(_ v: Int) -> String {
    let s = String(v)
    return String(repeating: "0", count: max(0, 4 - s.count)) + s
}

/// A DUMP payload: the type byte and value, the RDB version and the CRC64.
func dumpPayload(type: UInt8, _ value: [UInt8], version: Int = 10) -> Bytes {
    var p = [type] + value + le16(version)
    p += le64(Int64(bitPattern: CRC64.checksum(p)))
    return Bytes(p)
}

/// A ziplist from encoded entries (encoding byte(s) and data); the builder adds each
/// entry's previous-entry size and the header.
func ziplist(_ entries: [[UInt8]], countOverride: Int? = nil) -> [UInt8] {
    var body: [UInt8] = []
    var previous = 0
    var tail = 10
    for e in entries {
        tail = 10 + body.count
        let prevlen: [UInt8] = previous < 254 ? [UInt8(previous)] : [0xfe] + le32(previous)
        body += prevlen + e
        previous = prevlen.count + e.count
    }
    let total = 10 + body.count + 1
    return le32(total) + le32(tail) + le16(countOverride ?? entries.count) + body + [0xff]
}

/// A listpack from encoded elements (encoding and data); the builder adds the
/// back-lengths and the header.
func listpack(_ elements: [[UInt8]], countOverride: Int? = nil) -> [UInt8] {
    var body: [UInt8] = []
    for e in elements { body += e + backLength(e.count) }
    let total = 6 + body.count + 1
    return le32(total) + le16(countOverride ?? elements.count) + body + [0xff]
}

func backLength(_ l: Int) -> [UInt8] {
    if l <= 127 { return [UInt8(l)] }
    if l < 16383 { return [UInt8(l >> 7), UInt8(l & 127) | 128] }
    return [UInt8(l >> 14), UInt8((l >> 7) & 127) | 128, UInt8(l & 127) | 128]
}

/// Listpack elements for strings (6-bit form) and small integers.
func lpString(_ s: String) -> [UInt8] {
    let b = Array(s.utf8)
    precondition(b.count < 64)
    return [0x80 | UInt8(b.count)] + b
}

func lpInt(_ v: Int) -> [UInt8] {
    if v >= 0 && v < 128 { return [UInt8(v)] }
    return [0xf4] + le64(Int64(v))
}

/// Loads `file` and returns the target (failing the test on an error).
func load(_ file: [UInt8], target: RecordingTarget = RecordingTarget()) throws -> (RecordingTarget, RDBLoadSummary) {
    let summary = try file.withUnsafeBytes { try RDBReader.load($0, into: target) }
    return (target, summary)
}

/// The value a DUMP payload decodes to, in plain form.
func plainDump(type: UInt8, _ value: [UInt8], target: RecordingTarget? = nil) throws -> Plain {
    Plain(try RDBReader.value(fromDump: dumpPayload(type: type, value), target: target))
}

/// The RDBError `body` throws (failing the test when it throws none or another kind).
func rdbError(_ body: () throws -> Any, file: StaticString = #filePath, line: UInt = #line) -> RDBError? {
    do {
        _ = try body()
        XCTFail("expected an RDBError", file: file, line: line)
    } catch let e as RDBError {
        return e
    } catch {
        XCTFail("expected an RDBError, got \(error)", file: file, line: line)
    }
    return nil
}
