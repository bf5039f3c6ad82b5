import Engine
import CJSHost
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

// JavaScript functions (TFUNCTION, TFCALL, TFCALLASYNC): how they run on a sharded server.
//
// The engine is SpiderMonkey 102 behind a C++ shim built as libBerthJS.so, which the
// server dlopens the first time a library loads (`JSRuntime`); berth-server itself never
// links it, so machines without libmozjs and the fully static build run everything else.
//
// Each library gets its own engine on its own thread (`JSLibrary`, `JSEngineThread`): a
// SpiderMonkey context never changes threads, and libraries run in parallel. One TFCALL or
// TFCALLASYNC is a *run* (`JSRun`): its client becomes an ordinary blocked client (its
// wait is `.external(run)`), the run is posted to the library's thread, and the reply goes
// back to the client's home shard through its inbox, where one claim decides between the
// reply, CLIENT UNBLOCK and a disconnect (the losers' results are dropped).
//
// A sync function, and every client.block section, is an atomic section over all shards:
// the library's thread takes every shard lock (the lock set steps aside for an escalating
// script, like a module's thread-safe context) and runs the commands in-process, as
// inside MULTI. A coroutine runs between sections without any lock. client.callAsync
// runs its command in a short section; a blocking command that has to wait registers an
// ordinary waiter whose outcome comes back to the library's thread instead of a client
// (`BlockedClient.completion`), and settles the promise there.
//
// A watchdog (`JSWatchdog`) stops a section that runs past lock-redis-timeout when
// library-fatal-failure-policy is `abort`, and checks the process's memory against
// js-memory-limit while JavaScript runs.

/// libBerthJS.so, loaded once per process.
///
/// Invariants: `api` is set at most once, under `state`, and never changes after; the
/// engine is initialized (JS_Init) exactly once, before the first engine is made.
enum JSRuntime {
    private static let state = Mutex<(api: JSAPI?, error: String?)>((nil, nil))

    /// The engine's C table, loading the library on first use; or why it is unavailable.
    static func api(libraryPath: String) -> Result<JSAPI, JSError> {
        state.withLock { s -> Result<JSAPI, JSError> in
            if let api = s.api { return .success(api) }
            if let e = s.error { return .failure(JSError(e)) }
            switch load(libraryPath) {
            case .success(let api):
                s.api = JSAPI(table: api)
                return .success(JSAPI(table: api))
            case .failure(let e):
                s.error = e.message
                return .failure(JSError(e.message))
            }
        }
    }

    /// At exit, once every engine is freed: SpiderMonkey must be shut down, or its static
    /// destructors crash the exiting process.
    static func shutdown() {
        state.withLock { s in
            guard let api = s.api else { return }
            api.c.shutdown()
            s.api = nil
            s.error = "ERR the JavaScript engine was shut down"
        }
    }

    private static func load(_ configured: String) -> Result<UnsafePointer<BerthJSAPI>, JSError> {
        #if BERTH_STATIC_EXECUTABLE
        return .failure(JSError("ERR JavaScript functions are not available in the fully static build (it cannot load libBerthJS.so); install a build made with STATIC_GLIBC=0"))
        #else
        // Beside the binary (a build directory), or in ../lib/berth (an installation).
        var path = configured
        if path.isEmpty {
            let candidates = [besideExecutable("libBerthJS.so"), besideExecutable("../lib/berth/libBerthJS.so")]
            path = candidates.first { access($0, R_OK) == 0 } ?? candidates[0]
        }
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            let reason = dlerror().map { String(cString: $0) } ?? "unknown error"
            return .failure(JSError("ERR the JavaScript engine could not be loaded: \(reason)"))
        }
        guard let symbol = dlsym(handle, "berth_js_api") else {
            return .failure(JSError("ERR \(path) is not Berth's JavaScript engine (no berth_js_api)"))
        }
        let get = unsafeBitCast(symbol, to: BerthJSAPIFunction.self)
        guard let api = get(), api.pointee.version == BERTH_JS_API_VERSION else {
            return .failure(JSError("ERR \(path) was built for another version of Berth"))
        }
        guard api.pointee.initialize() == 0 else { return .failure(JSError("ERR the JavaScript engine failed to initialize")) }
        return .success(api)
        #endif
    }

    /// `name` in the directory of the running executable.
    private static func besideExecutable(_ name: String) -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return name }
        let exe = String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = exe.lastIndex(of: "/") else { return name }
        return String(exe[...slash]) + name
    }
}

/// The engine library's C table; immutable once loaded, so any thread may read it.
struct JSAPI: @unchecked Sendable {
    let table: UnsafePointer<BerthJSAPI>
    var c: BerthJSAPI { table.pointee }
}

/// An error reply of the JavaScript side, as text ("ERR ...").
struct JSError: Error, Sendable {
    let message: String
    init(_ message: String) { self.message = message }
}

/// A byte buffer owned by the engine library, for results it writes.
struct JSBuffer: ~Copyable {
    let api: JSAPI
    let raw: UnsafeMutableRawPointer

    init(_ api: JSAPI) {
        self.api = api
        raw = api.c.buffer_new()!
    }

    deinit { api.c.buffer_free(raw) }

    var bytes: [UInt8] {
        var n = 0
        guard let p = api.c.buffer_bytes(raw, &n), n > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: n))
    }

    var string: String { String(decoding: bytes, as: UTF8.self) }
}
