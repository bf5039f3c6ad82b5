// The RDB file format, as Redis 7.0 writes it (version 10) and Redis 7.x and Valkey 8
// read and write it (versions 9 to 12). Every name here is the format's; nothing is
// Berth's own.
//
// A file is "REDIS" and a four-digit version, auxiliary fields (opcode 0xFA, two
// strings), function libraries (0xF5, the library's source), then for each database a
// SELECTDB (0xFE, number), an optional RESIZEDB hint (0xFB, key count, TTL count), and
// its keys: optional per-key opcodes (expiry 0xFC in ms or 0xFD in s, LRU idle 0xF8, LFU
// frequency 0xF9), the value's type byte, the key as a string, the value. The file ends
// with 0xFF and the CRC64 of everything before it (8 bytes, little-endian; 0 when the
// writer had `rdbchecksum no`).
//
// Lengths take 1, 2, 5 or 9 bytes (the first byte's two high bits say which); the
// fourth form (11) marks a string stored specially: as an 8, 16 or 32-bit integer, or
// LZF-compressed. A DUMP payload is one value (type byte and value) followed by the
// RDB version (2 bytes, little-endian) and the CRC64 of all that.

/// Value type bytes.
public enum RDBType {
    public static let string: UInt8 = 0
    public static let list: UInt8 = 1
    public static let set: UInt8 = 2
    public static let zset: UInt8 = 3
    public static let hash: UInt8 = 4
    public static let zset2: UInt8 = 5
    public static let modulePreGA: UInt8 = 6
    public static let module2: UInt8 = 7
    public static let hashZipmap: UInt8 = 9
    public static let listZiplist: UInt8 = 10
    public static let setIntset: UInt8 = 11
    public static let zsetZiplist: UInt8 = 12
    public static let hashZiplist: UInt8 = 13
    public static let listQuicklist: UInt8 = 14
    public static let streamListpacks: UInt8 = 15
    public static let hashListpack: UInt8 = 16
    public static let zsetListpack: UInt8 = 17
    public static let listQuicklist2: UInt8 = 18
    public static let streamListpacks2: UInt8 = 19
    public static let setListpack: UInt8 = 20
    public static let streamListpacks3: UInt8 = 21
    /// Redis 7.4 (RDB 12): hashes whose fields carry TTLs.
    public static let hashMetadataPreGA: UInt8 = 22
    public static let hashListpackExPreGA: UInt8 = 23
    public static let hashMetadata: UInt8 = 24
    public static let hashListpackEx: UInt8 = 25
}

/// Opcodes that are not value types.
public enum RDBOpcode {
    /// Valkey 8: the slot and sizes of the keys that follow (cluster mode).
    public static let slotInfo: UInt8 = 244
    public static let function2: UInt8 = 245
    public static let functionPreGA: UInt8 = 246
    public static let moduleAux: UInt8 = 247
    public static let idle: UInt8 = 248
    public static let freq: UInt8 = 249
    public static let aux: UInt8 = 250
    public static let resizeDB: UInt8 = 251
    public static let expireTimeMs: UInt8 = 252
    public static let expireTime: UInt8 = 253
    public static let selectDB: UInt8 = 254
    public static let eof: UInt8 = 255
}

/// Versions and the encodings of special strings and module values.
public enum RDBVersion {
    /// What Berth writes: the version redis-server 7.0 writes, which every later Redis and
    /// Valkey also read.
    public static let written: UInt16 = 10
    /// The newest version Berth reads (Redis 7.4; Valkey 8 writes 11).
    public static let newestRead: UInt16 = 12
    public static let oldestRead: UInt16 = 1
}

/// The two high bits of a length's first byte.
enum RDBLength {
    static let bits6: UInt8 = 0
    static let bits14: UInt8 = 1
    static let bits32: UInt8 = 0x80
    static let bits64: UInt8 = 0x81
    static let encoded: UInt8 = 3
    // The low six bits of an encoded string's first byte.
    static let int8: UInt8 = 0
    static let int16: UInt8 = 1
    static let int32: UInt8 = 2
    static let lzf: UInt8 = 3
}

/// Opcodes inside a module value written with the module API's Save* functions
/// (RDB 9 and later): each saved item is preceded by its kind.
public enum RDBModuleOpcode {
    public static let eof: UInt64 = 0
    public static let signedInt: UInt64 = 1
    public static let unsignedInt: UInt64 = 2
    public static let float: UInt64 = 3
    public static let double: UInt64 = 4
    public static let string: UInt64 = 5
}

/// A stream entry's flags inside its listpack node.
enum StreamItemFlag {
    static let none: Int64 = 0
    static let deleted: Int64 = 1
    static let sameFields: Int64 = 2
}

/// What a damaged file or payload reports: what was wrong and where.
public struct RDBError: Error, CustomStringConvertible {
    public let message: String
    /// Byte offset in the file or payload where reading stopped.
    public let offset: Int
    public init(_ message: String, offset: Int) {
        self.message = message
        self.offset = offset
    }
    public var description: String { "\(message) at offset \(offset)" }
}
