import Keyspace
import RESP

/// Reads RDB files and DUMP payloads (versions 1 to 12, Redis's and Valkey's) into
/// Berth's values. (Being written: the entry points below are the contract.)
public enum RDBReader {
    /// Loads a whole file. Throws RDBError for a damaged file (with the offset), or the
    /// Errno the file could not be opened or mapped with.
    public static func loadFile(path: String, into target: RDBLoadTarget) throws -> RDBLoadSummary {
        throw RDBError("RDB loading is not built yet", offset: 0)
    }

    /// Loads an RDB image from memory (an AOF's RDB preamble, a replica's full sync);
    /// `summary.bytesRead` says where the image ended.
    public static func load(_ bytes: UnsafeRawBufferPointer, into target: RDBLoadTarget) throws -> RDBLoadSummary {
        throw RDBError("RDB loading is not built yet", offset: 0)
    }

    /// RESTORE's payload: checks the footer (RDB version at most `RDBVersion.newestRead`,
    /// CRC64 unless it is zero) and decodes the one value.
    public static func value(fromDump payload: Bytes, target: RDBLoadTarget?) throws -> Value {
        throw RDBError("DUMP payload version or checksum are wrong", offset: 0)
    }
}

public struct RDBLoadSummary: Sendable {
    public var version: UInt16 = 0
    /// Keys handed to the target (expired ones included).
    public var keys = 0
    public var bytesRead = 0
    public init() {}
}

/// The module API's Load* functions read a module value through this.
public final class RDBModuleInput {
}
