import Modules
import RESP
import Synchronization

/// swiftdemo: the example module written in Swift (load with `loadmodule swift:swiftdemo`).
///
///   swiftdemo.delay <ms> [timeout_ms]   a task answers a random number after a delay;
///                                       past timeout_ms the timeout closure answers
///   swiftdemo.pop <key> <timeout_ms>    pops the list at key, waiting for a push
///   swiftdemo.count                     a task counts keys with DBSIZE under the lock
///   swiftdemo.stats                     [privdata frees, timeouts]
public enum SwiftDemoModule: SwiftModule {
    public static let name = "swiftdemo"
    public static let version = 1

    private static let frees = Atomic<Int>(0)
    private static let timeouts = Atomic<Int>(0)

    public static func onLoad(_ loader: SwiftModuleLoader, arguments: [String]) throws {
        try loader.addCommand("swiftdemo.delay") { ctx in delay(ctx) }
        try loader.addCommand("swiftdemo.pop", flags: "write", firstKey: 1, lastKey: 1, keyStep: 1) { ctx in pop(ctx) }
        try loader.addCommand("swiftdemo.count", flags: "readonly") { ctx in count(ctx) }
        try loader.addCommand("swiftdemo.stats", flags: "readonly fast") { ctx in
            ctx.reply(.array([.integer(frees.load(ordering: .relaxed)), .integer(timeouts.load(ordering: .relaxed))]))
        }
    }

    private static func milliseconds(_ b: Bytes) -> Int? {
        guard let v = Int(b.string), v >= 0 else { return nil }
        return v
    }

    private static func timedOut(_ ctx: SwiftModuleContext) {
        timeouts.add(1, ordering: .relaxed)
        ctx.reply(.simple("Request timedout"))
    }

    private static func delay(_ ctx: SwiftModuleContext) {
        let args = ctx.arguments
        guard args.count == 2 || args.count == 3 else { return ctx.replyWrongArity() }
        guard let ms = milliseconds(args[1]), let timeout = args.count == 3 ? milliseconds(args[2]) : 0 else {
            return ctx.reply(.error("ERR invalid delay or timeout"))
        }
        let blocked = ctx.block(timeoutMilliseconds: timeout,
                                onReply: { c, value in c.reply(.integer(value as? Int ?? 0)) },
                                onTimeout: { c, _ in timedOut(c) },
                                onFree: { _ in frees.add(1, ordering: .relaxed) })
        guard let blocked else { return }
        Task.detached {
            try? await Task.sleep(nanoseconds: UInt64(ms) * 1_000_000)
            blocked.unblock(Int.random(in: 1...1_000_000))
        }
    }

    /// Replies with the popped element and returns true, or false when the list is empty.
    private static func popNow(_ ctx: SwiftModuleContext, _ key: Bytes) -> Bool {
        switch ctx.call([Bytes("LPOP"), key]) {
        case .bulk(let element):
            ctx.reply(.bulk(element))
            return true
        case .error(let e):
            ctx.reply(.error(e))
            return true
        default:
            return false
        }
    }

    private static func pop(_ ctx: SwiftModuleContext) {
        let args = ctx.arguments
        guard args.count == 3 else { return ctx.replyWrongArity() }
        guard let timeout = milliseconds(args[2]) else { return ctx.reply(.error("ERR invalid timeout")) }
        if popNow(ctx, args[1]) { return }
        ctx.blockOnKeys([args[1]], timeoutMilliseconds: timeout, onReady: { c, key in popNow(c, key) },
                        onTimeout: { c in timedOut(c) })
    }

    private static func count(_ ctx: SwiftModuleContext) {
        guard ctx.arguments.count == 1 else { return ctx.replyWrongArity() }
        guard let blocked = ctx.block(onReply: { _, _ in }) else { return }
        Task.detached {
            let size = blocked.withLock { locked -> Int in
                if case .integer(let n) = locked.call([Bytes("DBSIZE")]) { return n }
                return -1
            }
            blocked.reply(.integer(size))
            blocked.unblock()
        }
    }
}
