import Keyspace
import RESP

/// Where a file being loaded puts what it reads. The reader (RDBReader) decodes every
/// encoding into Berth's values; the target decides where each key goes (the server's
/// target routes it to its shard) and what to do with auxiliary fields and libraries.
public protocol RDBLoadTarget: AnyObject {
    /// An auxiliary field (redis-ver, ctime, aof-base, repl-id, ...); throws when the field
    /// carries something that cannot be restored (Berth's JavaScript libraries).
    func aux(_ key: Bytes, _ value: Bytes) throws
    /// A FUNCTION library's source code; throws (with the reason) when it cannot be loaded.
    func functionLibrary(_ source: Bytes) throws
    /// One key. `expireAt` is Unix milliseconds, 0 when the key has no TTL; keys already
    /// past it are passed too (the target drops them, as a primary does). `access` is
    /// the idle time or LFU counter the file carried for it.
    func key(_ key: Bytes, _ value: Value, db: Int, expireAt: Int64, access: SavedAccess)
    /// The module data type with this 64-bit id (its 9-character name and encoding
    /// version packed as Redis packs them), to read a value of it; nil when no loaded
    /// module registered it.
    func moduleType(id: UInt64) -> (any RDBModuleType)?
}

/// A module's data type, as the file reader needs it: the module's own rdb_load reads
/// the value through the module API's Load* functions, which take what they read from
/// `input`.
public protocol RDBModuleType: AnyObject {
    func load(_ input: RDBModuleInput, encodingVersion: Int) throws -> Value
    /// The type's module-global data saved before or after the keys (`when`: 1 before, 2
    /// after), read by its aux_load. Throws when the type has none.
    func loadAux(_ input: RDBModuleInput, encodingVersion: Int, when: Int) throws
}

extension RDBModuleType {
    public func loadAux(_ input: RDBModuleInput, encodingVersion: Int, when: Int) throws {
        throw RDBError("The RDB file contains module AUX data, but the module '\(input.typeName)' doesn't seem to support it", offset: 0)
    }
}
