import Engine
import Keyspace
import Persistence
import RESP

/// `RedisModuleType`: a data type a module defined with CreateDataType. Values live in the
/// keyspace as `Value.module`; `free` is called when a value's last reference goes, and
/// `rdb_save`/`rdb_load` when a snapshot writes a value or a file is loaded
/// (ModuleTypeIO.swift).
///
/// Invariants: created only during its module's OnLoad; names are 9 characters from
/// `A-Za-z0-9_-` and unique in the server; a type lives as long as the process (values may
/// outlive MODULE UNLOAD's bookkeeping, so the object is never freed).
final class ModuleType: ModuleValueType, RDBSavableModuleType, RDBModuleType, @unchecked Sendable {
    typealias Free = @convention(c) (UnsafeMutableRawPointer?) -> Void
    typealias Load = @convention(c) (UnsafeMutableRawPointer?, Int32) -> UnsafeMutableRawPointer?
    typealias Save = @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void
    typealias AuxLoad = @convention(c) (UnsafeMutableRawPointer?, Int32, Int32) -> Int32
    typealias AuxSave = @convention(c) (UnsafeMutableRawPointer?, Int32) -> Void

    /// Module-global data the type saves before the keys, after them, or both
    /// (REDISMODULE_AUX_BEFORE_RDB, _AFTER_RDB), and the callbacks that do it.
    struct Aux {
        let load: AuxLoad?
        let save: AuxSave
        let triggers: Int32
    }
    static let auxBeforeKeys: Int32 = 1, auxAfterKeys: Int32 = 2

    let name: String
    let encodingVersion: Int
    private let freeFunction: Free?
    private let loadFunction: Load?
    private let saveFunction: Save?
    let aux: Aux?

    init(name: String, encodingVersion: Int, free: Free?, load: Load? = nil, save: Save? = nil, aux: Aux? = nil) {
        self.name = name
        self.encodingVersion = encodingVersion
        freeFunction = free
        loadFunction = load
        saveFunction = save
        self.aux = aux
    }

    func free(_ value: UnsafeMutableRawPointer?) { freeFunction?(value) }

    /// Redis's 64-bit type id: the 9-character name, 6 bits a character, then the
    /// encoding version in the low 10 bits.
    var rdbTypeID: UInt64 {
        let charset = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        var id: UInt64 = 0
        for c in name.utf8 { id = id << 6 | UInt64(charset.firstIndex(of: c) ?? 0) }
        return id << 10 | UInt64(encodingVersion & 1023)
    }

    func save(_ value: ModuleValue, into out: inout RDBOutput) -> Bool {
        guard let saveFunction else { return false }
        let io = ModuleIO(output: out)
        saveFunction(io.handle, value.pointer)
        out = io.output!
        return !io.failed
    }

    /// The aux record written at `when` (the MODULE_AUX opcode, the type id, when, what
    /// aux_save saved, EOF), or nil when the type saves nothing then.
    func auxRecord(when: Int32) -> [UInt8]? {
        guard let aux, aux.triggers & when != 0 else { return nil }
        var out = RDBOutput()
        out.byte(RDBOpcode.moduleAux)
        out.length(rdbTypeID)
        out.length(RDBModuleOpcode.unsignedInt)
        out.length(UInt64(when))
        let io = ModuleIO(output: out)
        aux.save(io.handle, when)
        guard var written = io.output, !io.failed else { return nil }
        written.length(RDBModuleOpcode.eof)
        return written.bytes
    }

    func loadAux(_ input: RDBModuleInput, encodingVersion: Int, when: Int) throws {
        guard let load = aux?.load else {
            throw RDBError("The RDB file contains module AUX data, but the module '\(name)' doesn't seem to support it", offset: 0)
        }
        let io = ModuleIO(input: input)
        guard load(io.handle, Int32(encodingVersion), Int32(when)) == 0, !io.failed else {
            throw input.error ?? RDBError("The module type \(name) failed to load its aux data", offset: 0)
        }
    }

    func load(_ input: RDBModuleInput, encodingVersion: Int) throws -> Value {
        guard let loadFunction else {
            throw RDBError("The module type \(name) has no rdb_load", offset: 0)
        }
        let io = ModuleIO(input: input)
        let pointer = loadFunction(io.handle, Int32(encodingVersion))
        guard pointer != nil, !io.failed else {
            if let pointer { freeFunction?(pointer) }
            throw input.error ?? RDBError("The module type \(name) failed to load a value", offset: 0)
        }
        return .module(ModuleValue(type: self, pointer: pointer))
    }

    var handle: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    static func from(_ p: UnsafeMutableRawPointer?) -> ModuleType {
        Unmanaged<ModuleType>.fromOpaque(p!).takeUnretainedValue()
    }

    /// Offset of `free` in RedisModuleTypeMethods: after `uint64_t version` and five
    /// function pointers (rdb_load, rdb_save, aof_rewrite, mem_usage, digest).
    static let freeOffset = 6 * MemoryLayout<UnsafeRawPointer>.size

    static func isValidName(_ name: String) -> Bool {
        name.utf8.count == 9 && name.utf8.allSatisfy { c in
            (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c == 95 || c == 45
        }
    }
}

extension ModuleAPI {
    /// Every type created by any module, by name (names are server-wide).
    nonisolated(unsafe) private static var types: [String: ModuleType] = [:]

    /// Every type's aux records for a snapshot: before the keys, and after them.
    static func auxRecords() -> (before: [[UInt8]], after: [[UInt8]]) {
        let all = types.values.sorted { $0.name < $1.name }
        return (all.compactMap { $0.auxRecord(when: ModuleType.auxBeforeKeys) },
                all.compactMap { $0.auxRecord(when: ModuleType.auxAfterKeys) })
    }

    /// The type a file's module value names by id (name and encoding version).
    static func type(rdbID id: UInt64) -> ModuleType? {
        let nameBits = id >> 10
        return types.values.first { $0.rdbTypeID >> 10 == nameBits }
    }

    static func registerTypes() {
        register("CreateDataType", { c, name, encver, methods in
            let ctx = ModuleContext.from(c)
            let typeName = String(cString: name!)
            // Only from OnLoad, which runs under the registry's load lock.
            guard ctx.kind == .load, ModuleType.isValidName(typeName), ModuleAPI.types[typeName] == nil else { return nil }
            var free: ModuleType.Free? = nil, load: ModuleType.Load? = nil, save: ModuleType.Save? = nil
            var aux: ModuleType.Aux? = nil
            if let methods {
                // RedisModuleTypeMethods: uint64 version, then rdb_load, rdb_save,
                // aof_rewrite, mem_usage, digest, free; from version 2 aux_load, aux_save and
                // the int aux_save_triggers.
                let word = MemoryLayout<UnsafeRawPointer>.size
                let slot = { (i: Int) in methods.load(fromByteOffset: i, as: UnsafeRawPointer?.self) }
                free = slot(ModuleType.freeOffset).map { unsafeBitCast($0, to: ModuleType.Free.self) }
                load = slot(word).map { unsafeBitCast($0, to: ModuleType.Load.self) }
                save = slot(2 * word).map { unsafeBitCast($0, to: ModuleType.Save.self) }
                if methods.load(as: UInt64.self) >= 2, let auxSave = slot(8 * word) {
                    aux = ModuleType.Aux(load: slot(7 * word).map { unsafeBitCast($0, to: ModuleType.AuxLoad.self) },
                                         save: unsafeBitCast(auxSave, to: ModuleType.AuxSave.self),
                                         triggers: methods.load(fromByteOffset: 9 * word, as: Int32.self))
                }
            }
            let type = ModuleType(name: typeName, encodingVersion: Int(encver), free: free, load: load, save: save, aux: aux)
            ModuleAPI.types[typeName] = type
            ctx.module.typeNames.append(typeName)
            return type.handle
        } as @convention(c) (RawPointer, UnsafePointer<CChar>?, Int32, UnsafeRawPointer?) -> RawPointer)
        register("ModuleTypeSetValue", { k, t, value in
            guard let k, let t, ModuleKey.from(k).writable else { return ModuleAPI.err }
            let key = ModuleKey.from(k)
            let v = ModuleValue(type: ModuleType.from(t), pointer: value)
            key.withEntry { cc, database, _ in
                database.overwrite(key.key, .module(v), now: cc.now)
                cc.dirty += 1
            }
            return ModuleAPI.ok
        } as @convention(c) (RawPointer, RawPointer, RawPointer) -> Int32)
        register("ModuleTypeGetType", { k in
            guard let k else { return nil }
            return ModuleKey.from(k).withEntry { _, _, e -> RawPointer in
                guard case .module(let v)? = e?.value, let type = v.type as? ModuleType else { return nil }
                return type.handle
            }
        } as @convention(c) (RawPointer) -> RawPointer)
        register("ModuleTypeGetValue", { k in
            guard let k else { return nil }
            return ModuleKey.from(k).withEntry { _, _, e -> RawPointer in
                guard case .module(let v)? = e?.value else { return nil }
                return v.pointer
            }
        } as @convention(c) (RawPointer) -> RawPointer)
    }
}
