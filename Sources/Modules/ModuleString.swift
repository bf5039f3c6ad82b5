import Engine
import CModuleHost
import Keyspace
import RESP
#if canImport(Glibc)
import Glibc
#endif

/// `RedisModuleString`: a byte string with a NUL-terminated copy, since StringPtrLen
/// hands modules a C pointer that must stay valid as long as the string.
///
/// Invariants: the C handle is this object's unmanaged pointer; each Create*, Hold and
/// Retain adds one reference, each FreeString (or the end of an auto-memory callback)
/// drops one, and the last drop frees the bytes. The bytes never change, except through
/// StringAppendBuffer, which (as in Redis) a module may only use on a string nobody else
/// holds; it moves the bytes, so an earlier StringPtrLen pointer is stale afterwards.
final class ModuleString {
    private(set) var pointer: UnsafeMutablePointer<CChar>
    private(set) var count: Int

    init(_ raw: UnsafeRawBufferPointer) {
        count = raw.count
        pointer = .allocate(capacity: raw.count + 1)
        if raw.count > 0 { UnsafeMutableRawPointer(pointer).copyMemory(from: raw.baseAddress!, byteCount: raw.count) }
        pointer[raw.count] = 0
    }

    static func make(_ bytes: Bytes) -> ModuleString { bytes.withUnsafeBytes { ModuleString($0) } }

    deinit { pointer.deallocate() }

    var bytes: Bytes { Bytes(UnsafeRawBufferPointer(start: pointer, count: count)) }

    /// StringAppendBuffer: the string grows by `raw`, in a new buffer.
    func append(_ raw: UnsafeRawBufferPointer) {
        let grown = UnsafeMutablePointer<CChar>.allocate(capacity: count + raw.count + 1)
        UnsafeMutableRawPointer(grown).copyMemory(from: pointer, byteCount: count)
        if raw.count > 0 { (UnsafeMutableRawPointer(grown) + count).copyMemory(from: raw.baseAddress!, byteCount: raw.count) }
        grown[count + raw.count] = 0
        pointer.deallocate()
        pointer = grown
        count += raw.count
    }

    /// A new string with one reference, owned by `ctx`'s auto-memory when enabled.
    static func create(_ raw: UnsafeRawBufferPointer, in ctx: ModuleContext?) -> UnsafeMutableRawPointer {
        let s = ModuleString(raw)
        if let ctx, ctx.autoMemory { ctx.autoStrings.append(s) }
        return Unmanaged.passRetained(s).toOpaque()
    }

    static func create(_ bytes: Bytes, in ctx: ModuleContext?) -> UnsafeMutableRawPointer {
        bytes.withUnsafeBytes { create($0, in: ctx) }
    }

    static func from(_ p: UnsafeRawPointer?) -> ModuleString {
        Unmanaged<ModuleString>.fromOpaque(p!).takeUnretainedValue()
    }
}

typealias RawPointer = UnsafeMutableRawPointer?

/// A NUL-terminated heap copy of `bytes` for a module to read; the caller deallocates it.
func cStringCopy(_ bytes: Bytes) -> UnsafeMutablePointer<CChar> {
    let p = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count + 1)
    bytes.withUnsafeBytes { raw in
        if raw.count > 0 { UnsafeMutableRawPointer(p).copyMemory(from: raw.baseAddress!, byteCount: raw.count) }
    }
    p[bytes.count] = 0
    return p
}

extension ModuleAPI {
    static func registerStrings() {
        register("CreateString", { (c: RawPointer, p: UnsafePointer<CChar>?, n: Int) -> RawPointer in
            ModuleString.create(UnsafeRawBufferPointer(start: p, count: n), in: c.map(ModuleContext.from))
        } as @convention(c) (RawPointer, UnsafePointer<CChar>?, Int) -> RawPointer)
        register("CreateStringFromLongLong", { (c: RawPointer, v: Int64) -> RawPointer in
            ModuleString.create(Bytes(Int(v)), in: c.map(ModuleContext.from))
        } as @convention(c) (RawPointer, Int64) -> RawPointer)
        register("CreateStringFromDouble", { (c: RawPointer, d: Double) -> RawPointer in
            ModuleString.create(Bytes(formatDouble(d)), in: c.map(ModuleContext.from))
        } as @convention(c) (RawPointer, Double) -> RawPointer)
        register("CreateStringFromString", { (c: RawPointer, s: UnsafeRawPointer?) -> RawPointer in
            let src = ModuleString.from(s)
            return ModuleString.create(UnsafeRawBufferPointer(start: src.pointer, count: src.count), in: c.map(ModuleContext.from))
        } as @convention(c) (RawPointer, UnsafeRawPointer?) -> RawPointer)
        register("FreeString", { (c: RawPointer, s: RawPointer) in
            guard let s else { return }
            if let c, case let ctx = ModuleContext.from(c), ctx.autoMemory,
               let i = ctx.autoStrings.lastIndex(where: { Unmanaged.passUnretained($0).toOpaque() == s }) {
                ctx.autoStrings.remove(at: i)
            }
            Unmanaged<ModuleString>.fromOpaque(s).release()
        } as @convention(c) (RawPointer, RawPointer) -> Void)
        register("RetainString", { (_: RawPointer, s: RawPointer) in
            if let s { _ = Unmanaged<ModuleString>.fromOpaque(s).retain() }
        } as @convention(c) (RawPointer, RawPointer) -> Void)
        register("HoldString", { (_: RawPointer, s: RawPointer) -> RawPointer in
            guard let s else { return nil }
            return Unmanaged<ModuleString>.fromOpaque(s).retain().toOpaque()
        } as @convention(c) (RawPointer, RawPointer) -> RawPointer)
        register("StringPtrLen", stringPtrLen)
        register("StringAppendBuffer", { (_: RawPointer, s: RawPointer, p: UnsafePointer<CChar>?, n: Int) -> Int32 in
            guard let s else { return ModuleAPI.err }
            ModuleString.from(s).append(UnsafeRawBufferPointer(start: p, count: n))
            return ModuleAPI.ok
        } as @convention(c) (RawPointer, RawPointer, UnsafePointer<CChar>?, Int) -> Int32)
        register("StringToLongLong", { (s: UnsafeRawPointer?, out: UnsafeMutablePointer<Int64>?) -> Int32 in
            guard let s, let v = Numbers.int(ModuleString.from(s).bytes) else { return ModuleAPI.err }
            out?.pointee = Int64(v)
            return ModuleAPI.ok
        } as @convention(c) (UnsafeRawPointer?, UnsafeMutablePointer<Int64>?) -> Int32)
        register("StringToDouble", { (s: UnsafeRawPointer?, out: UnsafeMutablePointer<Double>?) -> Int32 in
            guard let s, let d = Numbers.double(ModuleString.from(s).bytes) else { return ModuleAPI.err }
            out?.pointee = d
            return ModuleAPI.ok
        } as @convention(c) (UnsafeRawPointer?, UnsafeMutablePointer<Double>?) -> Int32)
        register("StringCompare", { (a: UnsafeRawPointer?, b: UnsafeRawPointer?) -> Int32 in
            let x = ModuleString.from(a).bytes, y = ModuleString.from(b).bytes
            return x == y ? 0 : (x < y ? -1 : 1)
        } as @convention(c) (UnsafeRawPointer?, UnsafeRawPointer?) -> Int32)
    }

    static let stringPtrLen: @convention(c) (UnsafeRawPointer?, UnsafeMutablePointer<Int>?) -> UnsafePointer<CChar>? = { s, len in
        guard let s else { len?.pointee = 0; return nil }
        let str = ModuleString.from(s)
        len?.pointee = str.count
        return UnsafePointer(str.pointer)
    }
}
