import Keyspace
import RESP

/// Reads RDB files and DUMP payloads (versions 1 to 12, Redis's and Valkey's) into
/// Berth's values.
///
/// A file is read in one pass over memory (a read-only mapping for files): the header,
/// then opcodes until EOF. Auxiliary fields, function libraries and keys go to the
/// RDBLoadTarget as they are read; opcodes that only qualify the next key (its expiry,
/// LRU idle time, LFU frequency) are kept until it comes. The checksum after EOF covers
/// everything before it and is verified at the end, so a target may have been handed
/// keys of an image that then fails its checksum: a failed load must be thrown away whole.
///
/// Values are decoded by ValueDecoder (and StreamDecoder, ModuleValueDecoder), the
/// compact encodings by ZiplistReader, ListpackReader, IntsetReader and Zipmap, all
/// reading through RDBInput, which checks every read against the bytes left.
public enum RDBReader {
    /// Loads a whole file. Throws RDBError for a damaged file (with the offset), or the
    /// Errno the file could not be opened or mapped with.
    public static func loadFile(path: String, into target: RDBLoadTarget) throws -> RDBLoadSummary {
        try MappedFile.withContents(of: path) { try load($0, into: target) }
    }

    /// Loads an RDB image from memory (an AOF's RDB preamble, a replica's full sync);
    /// `summary.bytesRead` says where the image ended.
    public static func load(_ bytes: UnsafeRawBufferPointer, into target: RDBLoadTarget) throws -> RDBLoadSummary {
        var input = RDBInput(bytes)
        var summary = RDBLoadSummary()
        summary.version = try readHeader(&input)
        var state = KeyState(now: ShardStore.nowMilliseconds())
        while try readOpcode(&input, target: target, state: &state, summary: &summary) {}
        if summary.version >= 5 { try verifyChecksum(&input) }
        summary.bytesRead = input.position
        return summary
    }

    /// RESTORE's payload: checks the footer (RDB version at most `RDBVersion.newestRead`,
    /// CRC64 unless it is zero) and decodes the one value.
    public static func value(fromDump payload: Bytes, target: RDBLoadTarget?) throws -> Value {
        try payload.withUnsafeBytes { bytes in
            let body = try checkDumpFooter(bytes)
            var input = RDBInput(body)
            do {
                let type = try input.byte()
                let context = ValueContext(target: target, key: nil, db: -1, now: ShardStore.nowMilliseconds())
                guard let value = try ValueDecoder.decode(type: type, from: &input, context: context), input.isAtEnd else {
                    throw input.error("Bad data format")
                }
                return value
            } catch {
                // RESTORE answers every decoding failure the same way, as Redis does.
                throw RDBError("Bad data format", offset: (error as? RDBError)?.offset ?? input.position)
            }
        }
    }

    // MARK: File structure

    private static let magic = Array("REDIS".utf8)
    /// Valkey 9's files start "VALKEY" and a three-digit version (80 and up), a format
    /// that diverged from Redis's after version 11.
    private static let valkeyMagic = Array("VALKEY".utf8)

    /// "REDIS" and four ASCII digits: the version.
    private static func readHeader(_ input: inout RDBInput) throws -> UInt16 {
        let head = input.slice(0..<min(input.count, 9))
        if head.starts(with: valkeyMagic) {
            throw RDBError("Valkey 9's RDB format (version 80 and later) is not supported: Berth reads RDB versions \(RDBVersion.oldestRead) to \(RDBVersion.newestRead)", offset: 0)
        }
        guard head.count == 9, head.starts(with: magic) else {
            throw RDBError("Wrong signature: not an RDB file", offset: 0)
        }
        try input.skip(magic.count)
        var version: UInt16 = 0
        for _ in 0..<4 {
            let digit = try input.byte()
            guard digit >= 48 && digit <= 57 else { throw RDBError("Bad RDB version number", offset: 5) }
            version = version * 10 + UInt16(digit - 48)
        }
        guard version >= RDBVersion.oldestRead && version <= RDBVersion.newestRead else {
            let whose = version >= 80 ? " (Valkey 9's format)" : ""
            throw RDBError("Can't handle RDB format version \(version)\(whose): Berth reads versions \(RDBVersion.oldestRead) to \(RDBVersion.newestRead)", offset: 5)
        }
        return version
    }

    /// What the opcodes before a key say about it, and the database it goes to.
    private struct KeyState {
        let now: Int64
        var db = 0
        var expireAt: Int64 = 0
        var access = SavedAccess()
    }

    /// Reads one opcode and what follows it; false at EOF.
    private static func readOpcode(
        _ input: inout RDBInput, target: RDBLoadTarget, state: inout KeyState, summary: inout RDBLoadSummary
    ) throws -> Bool {
        let start = input.position
        let op = try input.byte()
        switch op {
        case RDBOpcode.eof:
            return false
        case RDBOpcode.selectDB:
            let db = try input.length()
            guard db <= UInt64(Int32.max) else { throw input.error("Database number \(db) is out of range", at: start) }
            state.db = Int(db)
        case RDBOpcode.resizeDB:
            // Sizes of the database's key and expiry tables: a hint only.
            _ = try input.length()
            _ = try input.length()
        case RDBOpcode.aux:
            let key = try input.string()
            try target.aux(key, try input.string())
        case RDBOpcode.expireTimeMs:
            state.expireAt = expiry(try input.milliseconds())
        case RDBOpcode.expireTime:
            state.expireAt = expiry(Int64(try input.littleEndian(Int32.self)) * 1000)
        case RDBOpcode.idle:
            state.access.idleSeconds = Int(clamping: try input.length())
        case RDBOpcode.freq:
            state.access.frequency = Int(try input.byte())
        case RDBOpcode.function2:
            try loadFunctionLibrary(&input, target: target, at: start)
        case RDBOpcode.functionPreGA:
            throw input.error("Pre-release function format not supported", at: start)
        case RDBOpcode.moduleAux:
            try ModuleValueDecoder.decodeAux(&input, target: target)
        case RDBOpcode.slotInfo:
            // Valkey 8 cluster mode: slot number, key count, expiring key count. A hint only.
            for _ in 0..<3 { _ = try input.length() }
        default:
            try readKey(type: op, &input, target: target, state: &state, summary: &summary)
        }
        return true
    }

    /// A key of value type `type`: its name, then the value.
    private static func readKey(
        type: UInt8, _ input: inout RDBInput, target: RDBLoadTarget, state: inout KeyState, summary: inout RDBLoadSummary
    ) throws {
        let start = input.position - 1
        guard ValueDecoder.isValueType(type) else {
            throw input.error("Unknown RDB opcode or value type \(type)", at: start)
        }
        let key = try input.string()
        let context = ValueContext(target: target, key: key, db: state.db, now: state.now)
        if let value = try ValueDecoder.decode(type: type, from: &input, context: context) {
            target.key(key, value, db: state.db, expireAt: state.expireAt, access: state.access)
            summary.keys += 1
        }
        // An empty collection (written by old versions) is skipped, as Redis skips it.
        state.expireAt = 0
        state.access = SavedAccess()
    }

    /// The target's `expireAt` uses 0 for "no TTL": an expiry at or before the epoch is
    /// passed as 1, still long past.
    private static func expiry(_ ms: Int64) -> Int64 { ms <= 0 ? 1 : ms }

    private static func loadFunctionLibrary(_ input: inout RDBInput, target: RDBLoadTarget, at start: Int) throws {
        let source = try input.string()
        do {
            try target.functionLibrary(source)
        } catch let e as RDBError {
            throw e
        } catch {
            throw RDBError("Function library failed to load: \(error)", offset: start)
        }
    }

    /// After EOF (version 5 on): the CRC64 of everything before it, little-endian; zero
    /// when the writer had checksums off.
    private static func verifyChecksum(_ input: inout RDBInput) throws {
        let covered = input.position
        let stored = try input.littleEndian(UInt64.self)
        guard stored != 0 else { return }
        let computed = CRC64.update(0, input.slice(0..<covered))
        guard stored == computed else {
            throw RDBError("RDB checksum mismatch: the file says \(hex(stored)), the data's is \(hex(computed))", offset: covered)
        }
    }

    private static func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }

    // MARK: DUMP payloads

    /// The value's bytes, once the footer (2 bytes of RDB version, 8 of CRC64, both
    /// little-endian) has been checked.
    static func checkDumpFooter(_ payload: UnsafeRawBufferPointer) throws -> UnsafeRawBufferPointer {
        let wrong = RDBError("DUMP payload version or checksum are wrong", offset: 0)
        let n = payload.count
        guard n >= 10 else { throw wrong }
        var footer = RDBInput(payload)
        try footer.skip(n - 10)
        let version = try footer.littleEndian(UInt16.self)
        let crc = try footer.littleEndian(UInt64.self)
        guard version <= RDBVersion.newestRead else { throw wrong }
        if crc != 0 && crc != CRC64.update(0, footer.slice(0..<(n - 8))) { throw wrong }
        return footer.slice(0..<(n - 10))
    }
}

public struct RDBLoadSummary: Sendable {
    public var version: UInt16 = 0
    /// Keys handed to the target (expired ones included).
    public var keys = 0
    public var bytesRead = 0
    public init() {}
}
