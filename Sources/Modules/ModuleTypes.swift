import Engine
import Keyspace
import RESP

/// `RedisModuleType`: a data type a module defined with CreateDataType. Values live in the
/// keyspace as `Value.module`; Berth keeps them in memory only (it has no persistence), so
/// of the type's methods only `free` is called, when a value's last reference goes.
///
/// Invariants: created only during its module's OnLoad; names are 9 characters from
/// `A-Za-z0-9_-` and unique in the server; a type lives as long as the process (values may
/// outlive MODULE UNLOAD's bookkeeping, so the object is never freed).
final class ModuleType: ModuleValueType, @unchecked Sendable {
    typealias Free = @convention(c) (UnsafeMutableRawPointer?) -> Void

    let name: String
    let encodingVersion: Int
    private let freeFunction: Free?

    init(name: String, encodingVersion: Int, free: Free?) {
        self.name = name
        self.encodingVersion = encodingVersion
        freeFunction = free
    }

    func free(_ value: UnsafeMutableRawPointer?) { freeFunction?(value) }

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

    static func registerTypes() {
        register("CreateDataType", { c, name, encver, methods in
            let ctx = ModuleContext.from(c)
            let typeName = String(cString: name!)
            // Only from OnLoad, which runs under the registry's load lock.
            guard ctx.kind == .load, ModuleType.isValidName(typeName), ModuleAPI.types[typeName] == nil else { return nil }
            var free: ModuleType.Free? = nil
            if let methods {
                let slot = methods.load(fromByteOffset: ModuleType.freeOffset, as: UnsafeRawPointer?.self)
                free = slot.map { unsafeBitCast($0, to: ModuleType.Free.self) }
            }
            let type = ModuleType(name: typeName, encodingVersion: Int(encver), free: free)
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
