import Engine
import RESP
// The RDB side of module data types: Save*/Load* on a `RedisModuleIO`.
//
// These functions exist only to be called from a data type's rdb_save, rdb_load and
// aof_rewrite callbacks (EmitAOF, the variadic one, is in host.c). Berth has no RDB or
// AOF and never calls those callbacks, so no `RedisModuleIO` ever exists and none of these
// can be reached with a real one. They are provided so that a module that uses them
// loads with every pointer it needs set: saving does nothing, loading yields zero or an
// empty value, and IsIOError reports the I/O as failed.
extension ModuleAPI {
    static func registerTypeIO() {
        register("SaveUnsigned", { _, _ in } as @convention(c) (RawPointer, UInt64) -> Void)
        register("LoadUnsigned", { _ in 0 } as @convention(c) (RawPointer) -> UInt64)
        register("SaveSigned", { _, _ in } as @convention(c) (RawPointer, Int64) -> Void)
        register("LoadSigned", { _ in 0 } as @convention(c) (RawPointer) -> Int64)
        register("SaveDouble", { _, _ in } as @convention(c) (RawPointer, Double) -> Void)
        register("LoadDouble", { _ in 0 } as @convention(c) (RawPointer) -> Double)
        register("SaveFloat", { _, _ in } as @convention(c) (RawPointer, Float) -> Void)
        register("LoadFloat", { _ in 0 } as @convention(c) (RawPointer) -> Float)
        register("SaveString", { _, _ in } as @convention(c) (RawPointer, RawPointer) -> Void)
        register("SaveStringBuffer", { _, _, _ in } as @convention(c) (RawPointer, UnsafePointer<CChar>?, Int) -> Void)
        register("LoadString", { _ in ModuleString.create(Bytes(), in: nil) } as @convention(c) (RawPointer) -> RawPointer)
        register("LoadStringBuffer", { _, len in
            len?.pointee = 0
            return nil
        } as @convention(c) (RawPointer, UnsafeMutablePointer<Int>?) -> UnsafeMutablePointer<CChar>?)
        register("IsIOError", { _ in 1 } as @convention(c) (RawPointer) -> Int32)
    }
}
