import Engine
import CJSHost
import CAllocator
import CUring
import Commands
import Keyspace
import RESP
import Synchronization

/// One loaded JavaScript library: its code and functions, and the engine that runs them on
/// the library's own thread (see JSRuntime.swift for the mechanism).
///
/// Invariants: `name`, `code`, `config` and `functions` never change after load; `engine`,
/// `runs`, `waiters`, `depth` and `commands` belong to the library's thread; the atomics
/// are the watchdog's view of that thread. While `depth > 0` that thread holds every
/// shard lock, and it holds none otherwise.
final class JSLibrary: @unchecked Sendable {
    enum Kind: String { case sync, async, coroutine }

    struct Function {
        let name: String
        let kind: Kind
        let flags: [String]
        let description: String
        var isAsync: Bool { kind != .sync }
        var noWrites: Bool { flags.contains("no-writes") }
        var allowOOM: Bool { flags.contains("allow-oom") }
    }

    let name: String
    let code: Bytes
    let config: String?
    private(set) var functions: [Function] = []
    unowned(unsafe) let server: Server
    let api: JSAPI
    private var thread: JSEngineThread!

    // The library's thread only.
    private var engine: OpaquePointer?
    private var runs: [UInt64: JSRun] = [:]
    /// callAsync commands waiting as ordinary blocked clients, by promise id.
    private var waiters: [UInt64: BlockedClient] = [:]
    private var depth = 0
    private var sectionRun: JSRun?
    /// The command context of the library's sections (ready keys, keyspace events).
    private let commands: CommandContext
    private var hostTable = BerthJSHost()

    /// Monotonic ms when the running section (or load) began; 0 when none.
    let sectionStartedAt = Atomic<Int>(0)
    /// JavaScript is running on the library's thread right now.
    let executing = Atomic<Bool>(false)
    /// The watchdog already asked this section to stop.
    let stopRequested = Atomic<Bool>(false)
    /// Runs not finished yet (TFUNCTION LIST pending_jobs).
    let pendingRuns = Atomic<Int>(0)
    /// Calls from inside EXEC, run ahead of everything else (see `runLent`).
    private let lentJobs = Mutex<[JSEngineThread.Job]>([])
    private let lentWaiting = Atomic<Int>(0)

    private init(name: String, code: Bytes, config: String?, server: Server, api: JSAPI) {
        self.name = name
        self.code = code
        self.config = config
        self.server = server
        self.api = api
        commands = CommandContext(stores: server.stores, slots: server.slots,
                                  reply: ReplyWriter(buffer: IOBuffer(capacity: 64), protocolVersion: 3))
    }

    /// Starts an engine on a new thread and runs `code` in it; the library, or the error
    /// reply. Waits for the load (Redis blocks the whole server for a FUNCTION LOAD), at
    /// most lock-redis-timeout whatever library-fatal-failure-policy says: load-time code
    /// only registers functions, and a load that never ends would hold every client.
    static func load(name: String, code: Bytes, body: Bytes, config: String?, server: Server) -> Result<JSLibrary, JSError> {
        let api: JSAPI
        switch JSRuntime.api(libraryPath: server.config.get("js-library")) {
        case .success(let a): api = a
        case .failure(let e): return .failure(e)
        }
        let library = JSLibrary(name: name, code: code, config: config, server: server, api: api)
        let done = Semaphore()
        let outcome = Mutex<Result<[Function], JSError>>(.failure(JSError("ERR the engine did not start")))
        library.thread = JSEngineThread {
            let result = library.start(body: body)
            outcome.withLock { $0 = result }
            done.signal()
        }
        if !done.wait(milliseconds: server.config.int("lock-redis-timeout")) {
            library.interrupt(stop: true, memoryLimit: 0)
            done.wait()
        }
        switch outcome.withLock({ $0 }) {
        case .success(let functions):
            library.functions = functions
            return .success(library)
        case .failure(let e):
            library.close(reason: nil)
            return .failure(e)
        }
    }

    func function(_ name: String) -> Function? { functions.first { $0.name == name } }

    /// Starts run `run` on the library's thread; false when the library is closed.
    func start(_ run: JSRun, argv: [Bytes]) -> Bool {
        pendingRuns.add(1, ordering: .relaxed)
        let posted = thread.post { [self] in invoke(run, argv) }
        if !posted { pendingRuns.subtract(1, ordering: .relaxed) }
        return posted
    }

    /// Runs `run`, a call inside EXEC, on the locks the transaction holds, and waits for its
    /// reply. The library's thread takes it ahead of its queue: if that thread is waiting
    /// for the shard locks the transaction holds, it gives up, runs this, and tries again.
    func runLent(_ run: JSRun, argv: [Bytes]) -> [UInt8] {
        pendingRuns.add(1, ordering: .relaxed)
        lentJobs.withLock { $0.append { [self] in invoke(run, argv) } }
        lentWaiting.add(1, ordering: .releasing)
        guard thread.post({ [self] in runLentJobs() }) else {
            lentJobs.withLock { $0.removeAll() }
            lentWaiting.store(0, ordering: .releasing)
            pendingRuns.subtract(1, ordering: .relaxed)
            return Array("-ERR Unknown library \(name)\r\n".utf8)
        }
        run.lent!.done.wait()
        return run.lent!.reply
    }

    private func runLentJobs() {
        while let job = lentJobs.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) {
            lentWaiting.subtract(1, ordering: .releasing)
            job()
        }
    }

    private func invoke(_ run: JSRun, _ argv: [Bytes]) {
        guard let engine else { return fail(run, "ERR the library was deleted") }
        runs[run.id] = run
        withExecuting {
            withCArguments(argv) { pointers, lengths in
                api.c.invoke(engine, run.id, run.function, pointers, lengths, Int32(argv.count), Int32(run.protocolVersion))
            }
        }
    }

    /// Stops the engine after the jobs already queued: unfinished runs get `reason` (or
    /// a generic error), waiting callAsync commands are withdrawn, the thread ends.
    func close(reason: String?, then done: Semaphore? = nil) {
        thread.close { [self] in
            defer { done?.signal() }
            runLentJobs()
            for run in Array(runs.values) { fail(run, reason ?? "ERR the library was deleted while the function ran") }
            for client in waiters.values where client.claim(.unblocked) {
                server.shards[client.home].post(.run { $0.blocking.finishBlocked(client, .error("UNBLOCKED library deleted")) })
            }
            waiters = [:]
            engineForInterrupt.withLock { $0 = nil }
            if let engine { api.c.engine_free(engine) }
            engine = nil
        }
    }

    // MARK: the library's thread

    private func start(body: Bytes) -> Result<[Function], JSError> {
        hostTable = JSHost.table(for: self)
        let gcMax = server.config.int("js-heap-max-bytes")
        guard let engine = withUnsafePointer(to: &hostTable, { api.c.engine_new($0, gcMax) }) else {
            return .failure(JSError("ERR the JavaScript engine could not be created"))
        }
        self.engine = engine
        engineForInterrupt.withLock { $0 = EngineHandle(pointer: engine) }
        let out = JSBuffer(api)
        let configBytes = Array((config ?? "").utf8)
        let status = withExecuting(section: true) {
            body.withUnsafeBytes { code in
                configBytes.withUnsafeBufferPointer { cfg in
                    api.c.load(engine, code.baseAddress?.assumingMemoryBound(to: CChar.self), code.count,
                               UnsafeRawPointer(cfg.baseAddress)?.assumingMemoryBound(to: CChar.self), cfg.count, out.raw)
                }
            }
        }
        guard status == 0 else {
            let message = out.string
            return .failure(JSError(message.hasPrefix("ERR ") ? message : "ERR Failed loading the library: \(message)"))
        }
        let fields = out.bytes.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        var functions: [Function] = []
        var i = 0
        while i + 3 < fields.count {
            functions.append(Function(name: fields[i], kind: Kind(rawValue: fields[i + 1]) ?? .sync,
                                      flags: fields[i + 2].split(separator: ",").map(String.init), description: fields[i + 3]))
            i += 4
        }
        guard !functions.isEmpty else { return .failure(JSError("ERR the library registered no functions")) }
        return .success(functions)
    }

    /// Marks JavaScript as running for the watchdog (and, with `section`, starts the
    /// lock-redis-timeout clock, as a load counts against it too).
    private func withExecuting<T>(section: Bool = false, _ body: () -> T) -> T {
        executing.store(true, ordering: .releasing)
        if section { beginSectionClock() }
        let result = body()
        if section { sectionStartedAt.store(0, ordering: .releasing) }
        executing.store(false, ordering: .releasing)
        afterJavaScript()
        return result
    }

    private func beginSectionClock() {
        stopRequested.store(false, ordering: .relaxed)
        sectionStartedAt.store(monotonicMicroseconds() / 1000, ordering: .releasing)
    }

    /// After control came back from JavaScript: a run cut off by the watchdog inside its
    /// section leaves the section here and gets its error. A stop outside any section
    /// (the memory limit, in a coroutine's continuation) cannot be pinned on one run, and
    /// the library's memory is what ran out: every call in flight in it fails, so that no
    /// client waits for a continuation that will never run.
    private func afterJavaScript() {
        guard let engine, api.c.terminated(engine) != 0 else { return }
        let memory = api.c.terminated(engine) == 2
        let reason = memory ? "ERR Execution was terminated: the memory limit was reached"
                            : "ERR Execution was terminated due to timeout"
        if let run = sectionRun {
            while depth > 0 { leave(run) }
            fail(run, reason)
        } else if memory {
            for run in Array(runs.values) { fail(run, reason) }
        }
    }

    func run(_ id: UInt64) -> JSRun? { runs[id] }

    /// Enters the run's atomic section: every shard lock, taken as a module thread takes
    /// them (a call inside EXEC finds them held by the transaction).
    func enter(_ run: JSRun) -> String? {
        // Past maxmemory only functions that cannot write, or may run out of memory, enter.
        let maxmemory = server.config.int("maxmemory")
        if depth == 0 && maxmemory > 0 && !run.noWrites && !run.allowOOM && Int(berth_allocated_bytes()) > maxmemory {
            return "OOM command not allowed when used memory > 'maxmemory'."
        }
        if depth == 0 {
            if run.lent == nil {
                let section = server.offShardSection!
                while !section.enter(section.everyShard, .outlastBusy,
                                     giveUp: { lentWaiting.load(ordering: .acquiring) > 0 }) {
                    runLentJobs()
                }
            }
            context(run).now = ShardStore.nowMilliseconds()
            context(run).beginEffectBatch()  // the section's writes: one block of effects
            sectionRun = run
            beginSectionClock()
        }
        depth += 1
        return nil
    }

    func leave(_ run: JSRun) {
        guard depth > 0 else { return }
        depth -= 1
        if depth == 0 {
            sectionStartedAt.store(0, ordering: .releasing)
            let owner = sectionRun
            sectionRun = nil
            if let owner { context(owner).endEffectBatch() }  // before the locks go
            if owner?.lent == nil { server.offShardSection.leave(server.offShardSection.everyShard, context: commands) }
        }
    }

    /// Where a run's commands run: the lending transaction's context, or the library's.
    private func context(_ run: JSRun) -> CommandContext { run.lent?.context ?? commands }

    /// client.call: runs `args` now, inside the section; the RESP3 reply.
    func call(_ run: JSRun, _ args: [Bytes]) -> [UInt8] {
        guard depth > 0 else { return Array("-ERR the client can only run commands inside an atomic section\r\n".utf8) }
        switch check(run, args) {
        case .failure(let e): return Array("-\(e.message)\r\n".utf8)
        case .success(let spec):
            let started = monotonicMicroseconds()
            let reply: [UInt8]
            if spec.handler == nil, let free = server.connectionFreeReply(spec, args, protocolVersion: 3) {
                reply = free
            } else {
                reply = server.runNested(spec, args, in: context(run), db: run.db, protocolVersion: 3).readableArray
            }
            record(spec, args, run, reply, since: started)
            return reply
        }
    }

    /// A command client.call ran counts in commandstats and the latency histogram, as a
    /// module's Call does (CallRecords.swift); this thread is no shard's.
    private func record(_ spec: CommandSpec, _ args: [Bytes], _ run: JSRun, _ reply: [UInt8], since started: Int) {
        server.record(CallRecord(spec, args, db: run.db, microseconds: monotonicMicroseconds() - started,
                                 failed: reply.first == UInt8(ascii: "-"), slowlogCaller: nil, samplesLatency: true,
                                 monitorPeer: nil), on: nil)
    }

    /// client.callAsync: runs `args` in a short section of its own; a blocking command
    /// that must wait becomes an ordinary waiter. The promise settles on this thread.
    func callAsync(_ run: JSRun, promise: UInt64, raw: Bool, _ args: [Bytes]) {
        let reply: [UInt8]
        switch check(run, args) {
        case .failure(let e):
            reply = Array("-\(e.message)\r\n".utf8)
        case .success(let spec) where spec.handler == nil:
            let started = monotonicMicroseconds()
            reply = server.connectionFreeReply(spec, args, protocolVersion: 3) ?? []
            record(spec, args, run, reply, since: started)
        case .success(let spec):
            let started = monotonicMicroseconds()
            let entered = depth == 0
            if entered { _ = enter(run) }
            let (out, request) = server.runNested(spec, args, in: context(run), db: run.db, protocolVersion: 3,
                                                  allowingBlock: run.blockAllowed && spec.flags.contains(.blocking))
            if let request {
                wait(run, promise: promise, raw: raw, request)
                if entered { leave(run) }
                return
            }
            if entered { leave(run) }
            reply = out.readableArray
            record(spec, args, run, reply, since: started)
        }
        thread.post { [self] in settle(promise, raw: raw, reply) }
    }

    /// Registers a callAsync command's wait; its outcome comes back to this thread.
    private func wait(_ run: JSRun, promise: UInt64, raw: Bool, _ request: BlockRequest) {
        let keys = request.keys.map { (shard: server.slots.shard(of: $0), key: DatabaseKey(db: run.db, key: $0)) }
        let home = keys.first?.shard ?? 0
        let client = BlockedClient(
            connectionID: -1, home: home, db: run.db, keys: keys, operation: request.operation, protocolVersion: 3,
            deadline: request.deadline, discardsReply: false,
            completion: { [self] bytes in
                thread.post { [self] in
                    waiters[promise] = nil
                    settle(promise, raw: raw, bytes)
                }
            })
        for (s, key) in keys { server.shards[s].waiters.add(client, on: key) }
        server.blockedClients.add(1, ordering: .relaxed)
        waiters[promise] = client
        if request.deadline > 0 { server.shards[home].post(.run { $0.blocking.timers.add(client) }) }
    }

    private func settle(_ promise: UInt64, raw: Bool, _ reply: [UInt8]) {
        guard let engine else { return }
        withExecuting {
            reply.withUnsafeBytes { r in
                api.c.settle(engine, promise, raw ? 1 : 0, r.baseAddress?.assumingMemoryBound(to: CChar.self), r.count)
            }
        }
    }

    /// What a function may run, with Redis's refusals.
    private func check(_ run: JSRun, _ args: [Bytes]) -> Result<CommandSpec, JSError> {
        guard let first = args.first, let spec = server.commands.lookup(first) else {
            return .failure(JSError("ERR Unknown Redis command '\(args.first?.string ?? "")'."))
        }
        guard spec.arityMatches(args.count) else { return .failure(JSError(CommandError.wrongArity(spec.name).message)) }
        if run.noWrites && spec.flags.contains(.write) {
            return .failure(JSError("ERR Write command '\(spec.name)' was called while write is not allowed."))
        }
        guard spec.handler != nil || server.connectionFreeReply(spec, args, protocolVersion: 3) != nil else {
            return .failure(JSError("ERR command '\(spec.name)' is not available to JavaScript functions in Berth"))
        }
        return .success(spec)
    }

    /// The run's reply reaches its client's home shard, where one claim decides.
    func finish(_ run: JSRun, _ reply: [UInt8]) {
        guard runs.removeValue(forKey: run.id) != nil else { return }
        if sectionRun === run { while depth > 0 { leave(run) } }
        pendingRuns.subtract(1, ordering: .relaxed)
        if let lent = run.lent {
            lent.reply = reply
            lent.done.signal()
        } else {
            run.complete(reply, server: server)
        }
    }

    private func fail(_ run: JSRun, _ message: String) {
        if runs[run.id] == nil { runs[run.id] = run }
        finish(run, Array("-\(message)\r\n".utf8))
    }

    func log(_ level: Int32, _ message: String) {
        switch level {
        case 0: server.log.debug("<\(name)> \(message)")
        case 1: server.log.info("<\(name)> \(message)")
        case 3: server.log.warning("<\(name)> \(message)")
        default: server.log.notice("<\(name)> \(message)")
        }
    }

    /// The watchdog's request: stop the JavaScript running now (timeout), or check the
    /// process's memory against `memoryLimit`.
    func interrupt(stop: Bool, memoryLimit: Int) {
        engineForInterrupt.withLock { engine in
            if let engine { api.c.interrupt(engine.pointer, stop ? 1 : 0, memoryLimit) }
        }
    }

    /// The engine pointer for other threads (the watchdog), cleared before it is freed.
    let engineForInterrupt = Mutex<EngineHandle?>(nil)

    struct EngineHandle: @unchecked Sendable {
        let pointer: OpaquePointer
    }
}
