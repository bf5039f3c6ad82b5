import Engine
import Keyspace
import Persistence
import RESP
#if canImport(Glibc)
import Glibc
#endif
// The RDB side of module data types: a `RedisModuleIO` and the Save*/Load* functions a
// type's rdb_save and rdb_load call on it.
//
// A snapshot writing a key of a module type calls the type's rdb_save with a ModuleIO
// that appends to the key's record: each Save* writes its kind (RDBModuleOpcode) and its
// value, as Redis 7 writes them, so Redis and Valkey with the same module load Berth's
// files, and the reverse. Loading calls rdb_load with a ModuleIO over the file's bytes
// (Persistence's RDBModuleInput, which checks each item's kind); a failed read marks the
// I/O failed (IsIOError), every later read fails too, and the value is not loaded.

/// What a `RedisModuleIO *` points to, for the duration of one rdb_save or rdb_load call.
final class ModuleIO {
    var output: RDBOutput?
    let input: RDBModuleInput?
    var failed = false

    init(output: RDBOutput) {
        self.output = output
        input = nil
    }

    init(input: RDBModuleInput) {
        self.input = input
        output = nil
    }

    var handle: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    static func from(_ p: UnsafeMutableRawPointer?) -> ModuleIO {
        Unmanaged<ModuleIO>.fromOpaque(p!).takeUnretainedValue()
    }

    func save(_ opcode: UInt64, _ body: (inout RDBOutput) -> Void) {
        guard output != nil else { failed = true; return }
        output!.length(opcode)
        body(&output!)
    }

    func load<T>(_ read: (RDBModuleInput) throws -> T, otherwise: T) -> T {
        guard let input, !failed else { failed = true; return otherwise }
        do { return try read(input) } catch {
            failed = true
            return otherwise
        }
    }
}

extension ModuleAPI {
    static func registerTypeIO() {
        register("SaveUnsigned", { io, v in
            ModuleIO.from(io).save(RDBModuleOpcode.unsignedInt) { $0.length(v) }
        } as @convention(c) (RawPointer, UInt64) -> Void)
        register("LoadUnsigned", { io in
            ModuleIO.from(io).load({ try $0.loadUnsigned() }, otherwise: 0)
        } as @convention(c) (RawPointer) -> UInt64)
        // Redis saves a signed value as the unsigned one with the same bits.
        register("SaveSigned", { io, v in
            ModuleIO.from(io).save(RDBModuleOpcode.unsignedInt) { $0.length(UInt64(bitPattern: v)) }
        } as @convention(c) (RawPointer, Int64) -> Void)
        register("LoadSigned", { io in
            ModuleIO.from(io).load({ try $0.loadSigned() }, otherwise: 0)
        } as @convention(c) (RawPointer) -> Int64)
        register("SaveDouble", { io, v in
            ModuleIO.from(io).save(RDBModuleOpcode.double) { $0.binaryDouble(v) }
        } as @convention(c) (RawPointer, Double) -> Void)
        register("LoadDouble", { io in
            ModuleIO.from(io).load({ try $0.loadDouble() }, otherwise: 0)
        } as @convention(c) (RawPointer) -> Double)
        register("SaveFloat", { io, v in
            ModuleIO.from(io).save(RDBModuleOpcode.float) { $0.binaryFloat(v) }
        } as @convention(c) (RawPointer, Float) -> Void)
        register("LoadFloat", { io in
            ModuleIO.from(io).load({ try $0.loadFloat() }, otherwise: 0)
        } as @convention(c) (RawPointer) -> Float)
        register("SaveString", { io, s in
            let bytes = ModuleString.from(s).bytes
            ModuleIO.from(io).save(RDBModuleOpcode.string) { $0.string(bytes) }
        } as @convention(c) (RawPointer, RawPointer) -> Void)
        register("SaveStringBuffer", { io, p, n in
            let raw = UnsafeRawBufferPointer(start: p, count: p == nil ? 0 : n)
            ModuleIO.from(io).save(RDBModuleOpcode.string) { $0.string(raw) }
        } as @convention(c) (RawPointer, UnsafePointer<CChar>?, Int) -> Void)
        register("LoadString", { io in
            let bytes = ModuleIO.from(io).load({ try $0.loadString() }, otherwise: Bytes())
            return ModuleString.create(bytes, in: nil)
        } as @convention(c) (RawPointer) -> RawPointer)
        register("LoadStringBuffer", { io, len in
            let io = ModuleIO.from(io)
            let bytes = io.load({ try $0.loadString() }, otherwise: Bytes())
            len?.pointee = io.failed ? 0 : bytes.count
            guard !io.failed else { return nil }
            // The module frees it with RedisModule_Free (malloc's free).
            let buffer = malloc(max(1, bytes.count))!.assumingMemoryBound(to: CChar.self)
            bytes.withUnsafeBytes { if $0.count > 0 { UnsafeMutableRawPointer(buffer).copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
            return buffer
        } as @convention(c) (RawPointer, UnsafeMutablePointer<Int>?) -> UnsafeMutablePointer<CChar>?)
        register("IsIOError", { io in
            ModuleIO.from(io).failed ? 1 : 0
        } as @convention(c) (RawPointer) -> Int32)
    }
}
