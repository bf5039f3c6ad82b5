import Commands
import CAllocator
import CUring
import Keyspace
import Logging
import RESP
import Synchronization
import SystemPackage
import Uring
#if canImport(Glibc)
import Glibc
#endif

/// The whole server: configuration, the listening socket, the shard threads, the shard
/// locks and stores, and the command table. It starts the shards, waits for a shutdown
/// request (SIGTERM, SIGINT or SHUTDOWN), stops them and returns.
public final class Server: @unchecked Sendable {
    public static let version = "0.1.0"
    /// The Redis version Berth's command set and replies follow (HELLO, INFO).
    public static let redisCompatibleVersion = "7.2.0"

    public let config: ServerConfig
    public let configFile: String?
    package let log: Logger
    package let commands: CommandTable
    package var engineCommands: [Int: EngineHandler] = [:]
    package let slots: SlotMap
    package let stores: [ShardStore]
    /// Every write's effects in one order (Keyspace/Effects.swift); drained by the main
    /// thread's housekeeping loop into the consumers attached at start.
    package let effects: EffectStream
    /// Taken only through a LockSection (LockSection.swift).
    let locks: [ShardLock]
    /// The lock section of every thread that is no shard's (module threads, JavaScript
    /// libraries): it keeps no state, so they share it.
    package private(set) var offShardSection: LockSection!
    package private(set) var shards: [Shard] = []
    package let databaseCount: Int
    private let tcpPort: Atomic<Int>
    /// The port clients connect to (CONFIG SET port changes it).
    var port: Int { tcpPort.load(ordering: .relaxed) }
    private let listener = Atomic<Int32>(-1)
    /// The listening socket: opened at start, replaced by CONFIG SET port/bind; shard 0
    /// accepts on it.
    var listenFD: FileDescriptor { FileDescriptor(rawValue: listener.load(ordering: .acquiring)) }
    private(set) var ioBackendName = "epoll"
    let startTime = ShardStore.nowMilliseconds()

    let clientCount = Atomic<Int>(0)
    /// Which shard each connection lives on (CLIENT UNBLOCK goes to that one only).
    let clientShards = ClientShards()
    /// WATCHed (key, client) pairs in all shards; writers skip the watcher check when zero.
    let watchedKeys = Atomic<Int>(0)
    /// Off after DEBUG SET-ACTIVE-EXPIRE 0: keys then expire only when a command meets them.
    let activeExpiry = Atomic<Bool>(true)
    let nextClientID = Atomic<Int>(0)
    /// Clients blocked right now, on every shard (INFO blocked_clients).
    package let blockedClients = Atomic<Int>(0)
    let pause: ClientPause
    let expiryHold: ExpiryHold
    let migrations = MigrationGate()
    let pubsub: PubSubRegistry
    let monitors: MonitorFeed
    /// Lua scripting, the module API and JavaScript (Extensions.swift).
    package let extensions: Extensions
    /// Allow-busy module commands admitted into a yielding module's section (ModuleYield.swift).
    package let moduleYieldGate = ModuleYieldGate()
    package let scriptBusy = ScriptBusy()
    package let slowlog = SlowLog()
    package let errorStats = ErrorStats()
    /// The RDB file: loading, SAVE, BGSAVE, save points (SnapshotService.swift).
    private(set) var snapshots: SnapshotService!
    /// The append-only file while appendonly is yes (AppendOnlyFile.swift).
    let appendOnlyFile = Mutex<AppendOnlyFile?>(nil)
    var aof: AppendOnlyFile? { appendOnlyFile.withLock { $0 } }
    /// Replies that wait for the append-only file's fsync (appendfsync always).
    let durability = DurabilityGate()
    /// Why writes are refused, if they are: 0 not, 1 a failed RDB save, 2 a failed AOF
    /// write (-MISCONF). Read on every command; set by `updateDiskError`.
    let diskError = Atomic<UInt8>(0)
    private let started = Atomic<Int>(0)
    private let shutdownRequested = Atomic<Bool>(false)
    /// What SHUTDOWN asked of the final save: the save points decide, or SAVE, or NOSAVE.
    enum ShutdownSave: Int { case asConfigured, save, noSave }
    let shutdownSave = Atomic<Int>(ShutdownSave.asConfigured.rawValue)
    /// Set while the data set loads at start: commands without the `loading` flag answer
    /// -LOADING (Execution.swift).
    let loading = Atomic<Bool>(false)
    /// Some shard is evicting keys (MemoryLimit.swift): the others leave it to it.
    let evicting = Atomic<Bool>(false)
    /// What all clients' buffers hold, as counted for maxmemory-clients (ClientEviction.swift).
    let clientMemory = Atomic<Int>(0)
    let loadingStarted = Atomic<Int64>(0)
    private let memoryPeak = Atomic<Int>(0)
    /// Bytes allocated once every shard ran, before any client: MEMORY STATS' baseline.
    private let startupBytes = Atomic<Int>(0)
    var startupMemory: Int { startupBytes.load(ordering: .relaxed) }

    package init(config: ServerConfig, configFile: String?, logger: Logger, extensions: Extensions) {
        self.config = config
        self.extensions = extensions
        self.configFile = configFile
        log = logger
        ReplyWriter.errorObserver = { [errorStats] in errorStats.count(message: $0) }
        var shardCount = config.int("shards")
        if shardCount <= 0 { shardCount = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
        databaseCount = config.int("databases")
        tcpPort = Atomic(config.int("port"))
        slots = SlotMap(shards: shardCount)
        let expiryHold = ExpiryHold()
        self.expiryHold = expiryHold
        pause = ClientPause(expiryHold: expiryHold)
        let effects = EffectStream()
        self.effects = effects
        stores = (0..<shardCount).map { _ in
            ShardStore(databases: config.int("databases"), expiryHold: expiryHold, effects: effects)
        }
        locks = (0..<shardCount).map { _ in ShardLock() }
        pubsub = PubSubRegistry(shards: shardCount)
        monitors = MonitorFeed(shards: shardCount)
        let engine = EngineCommands.table + PubSubCommands.table + extensions.scripting.commands
            + extensions.modules.commands + extensions.javascript.commands
        commands = CommandTable(extra: engine.map { $0.0 } + extensions.scripting.scriptSpecs)
        for (spec, handler) in engine { engineCommands[commands.lookup(Bytes(spec.name))!.id] = handler }
        // Redis keeps statistics per subcommand (cmdstat_config|set): Redis's subcommands
        // of Berth's containers get slots after the module commands'.
        let containers = Set(commands.specs.values.filter { !$0.subcommands.isEmpty }.map { $0.name })
        subcommandNames = RedisCommandMetadata.byName.keys
            .filter { name in name.split(separator: "|").first.map { containers.contains(String($0)) } ?? false }
            .sorted()
        let base = commands.count + Extensions.moduleCommandSlots
        subcommandStatIDs = Dictionary(uniqueKeysWithValues: subcommandNames.enumerated().map { ($1, base + $0) })
        offShardSection = LockSection(server: self, shard: nil)
        snapshots = SnapshotService(server: self)
    }

    /// Redis's `container|subcommand` names, and their statistics slots.
    let subcommandNames: [String]
    let subcommandStatIDs: [String: Int]

    /// The name of the command with statistics id `id`: built in, a module's, or a
    /// container's subcommand (`config|set`).
    func commandName(_ id: Int) -> String {
        if id < commands.names.count { return commands.names[id] }
        let base = commands.count + Extensions.moduleCommandSlots
        if id >= base && id - base < subcommandNames.count { return subcommandNames[id - base] }
        return extensions.modules.commandName(id: id) ?? "unknown"
    }

    /// The statistics slot of a call: its subcommand's for a container (`config|set`),
    /// else its command's.
    func statID(_ commandID: Int, subcommand: String?) -> Int {
        guard let subcommand, let id = subcommandStatIDs[subcommand] else { return commandID }
        return id
    }

    /// Statistics slots per shard: the built-in commands, room for module commands, then
    /// the containers' subcommands.
    var statsSlots: Int { commands.count + Extensions.moduleCommandSlots + subcommandNames.count }

    func peakMemory(_ current: Int) -> Int {
        var peak = memoryPeak.load(ordering: .relaxed)
        while current > peak {
            let (ok, seen) = memoryPeak.compareExchange(expected: peak, desired: current, ordering: .relaxed)
            if ok { return current }
            peak = seen
        }
        return peak
    }

    /// Chooses the event backend: io_uring unless forced to epoll or unavailable.
    private func chooseBackend() -> Bool {
        switch config.get("io") {
        case "epoll": return false
        case "uring":
            if Ring.isAvailable() { return true }
            log.warning("io_uring requested but not available here; falling back to epoll")
            return false
        default:
            if Ring.isAvailable() { return true }
            log.warning("io_uring is not available (kernel older than 5.19, or a seccomp policy); using epoll")
            return false
        }
    }

    /// Runs until shutdown; returns the process exit code.
    public func run() -> Int32 {
        berth_block_signals()
        do {
            let fd = try FileDescriptor.listeningSocket(host: config.get("bind"), port: port, backlog: Int32(config.int("tcp-backlog")))
            listener.store(fd.rawValue, ordering: .releasing)
        } catch {
            log.critical("\(error)")
            return 1
        }
        let effectLogPath = config.get("effect-log")
        if !effectLogPath.isEmpty {
            do { effects.attach(try EffectLog(path: effectLogPath)) } catch {
                log.critical("Can't open the effect log \(effectLogPath): \(error)")
                return 1
            }
        }
        let useUring = chooseBackend()
        ioBackendName = useUring ? "io_uring" : "epoll"
        shards = stores.indices.map { Shard(index: $0, server: self, store: stores[$0]) }
        for load in config.moduleLoads {
            do {
                try extensions.modules.load(into: self, path: load[0], arguments: Array(load.dropFirst()))
            } catch {
                log.critical("\(error)")
                return 1
            }
        }
        // The shards serve while the data set loads, answering -LOADING to all but the
        // commands allowed then (INFO, CONFIG, ...), as Redis does.
        loading.store(true, ordering: .releasing)
        var threads: [pthread_t] = []
        for shard in shards {
            threads.append(spawnThread { shard.run(useUring: useUring) })
        }
        while started.load(ordering: .acquiring) < shards.count { usleep(1000) }
        startupBytes.store(Int(berth_allocated_bytes()), ordering: .relaxed)
        log.notice("Berth \(Server.version) started: pid=\(getpid()) port=\(port) bind=\(config.get("bind")) shards=\(shards.count) io=\(ioBackendName)")
        _ = spawnThread { [self] in
            let sig = berth_wait_signal()
            log.warning("Received \(sig == SIGINT ? "SIGINT" : "SIGTERM") scheduling shutdown...")
            requestShutdown()
            _ = berth_wait_signal()
            log.warning("Second signal received: exiting now")
            exit(1)
        }
        // With appendonly yes the append-only file is the data set, as in Redis.
        loadingStarted.store(ShardStore.nowMilliseconds(), ordering: .relaxed)
        let loaded = config.get("appendonly") == "yes" ? openAppendOnlyFile() : loadSnapshotFile(atStart: true)
        // After loading, keyspace events are recorded: loaded keys are not "new" keys.
        applyKeyEventTracking()
        loading.store(false, ordering: .releasing)
        var exitCode: Int32 = 0
        if loaded {
            log.notice("Ready to accept connections tcp")
            SystemdNotify.send("READY=1\nSTATUS=\(statusLine())\nMAINPID=\(getpid())")
        } else {
            // Half a data set must not be saved over the files it came from.
            exitCode = 1
            shutdownSave.store(ShutdownSave.noSave.rawValue, ordering: .releasing)
            requestShutdown()
        }
        var lastStatus = ShardStore.nowMilliseconds()
        var lastCron = lastStatus
        while !shutdownRequested.load(ordering: .acquiring) {
            usleep(10_000)
            effects.drain()
            let now = ShardStore.nowMilliseconds()
            if now - lastCron >= 100 {
                snapshots.cron(dirtyNow: publishedDirty)
                if let aof {
                    aof.retryFailedWrite()
                    aof.fsyncIfDue()
                    aof.cron()
                }
                lastCron = now
            }
            if now - lastStatus >= 5000 {
                SystemdNotify.send("STATUS=\(statusLine())")
                lastStatus = now
            }
        }
        SystemdNotify.send("STOPPING=1\nSTATUS=Shutting down")
        // shutdown() (not just close) ends the multishot accept still armed on shard 0's
        // ring; otherwise the kernel keeps the port bound until the ring's teardown.
        listenFD.shutdownBoth()
        for shard in shards { shard.post(.stop) }
        for t in threads { pthread_join(t, nil) }
        effects.drain()  // what the shards did before they stopped
        aof?.close()
        listenFD.closeQuietly()
        if !saveBeforeExit() {
            log.warning("Error trying to save the DB, can't exit cleanly.")
            return 1
        }
        if exitCode != 0 { return exitCode }
        if !extensions.javascript.closeAll() {
            // A library's code would not stop: SpiderMonkey cannot be torn down under it.
            log.warning("A JavaScript library did not stop in time; exiting without tearing its engine down")
            log.notice("Berth is now ready to exit, bye bye...")
            _exit(0)
        }
        log.notice("Berth is now ready to exit, bye bye...")
        return 0
    }

    /// CONFIG SET port/bind: listens on the new address first (an error leaves everything
    /// as it was), then has shard 0 accept there and close the old listener. Connected
    /// clients stay connected, as in Redis.
    func rebind(host: String, port newPort: Int) throws {
        let fd = try FileDescriptor.listeningSocket(host: host, port: newPort, backlog: Int32(config.int("tcp-backlog")))
        listener.store(fd.rawValue, ordering: .releasing)
        tcpPort.store(newPort, ordering: .relaxed)
        shards[0].post(.run { $0.backend.replaceListener(with: fd) })
        log.notice("Listening on \(host):\(newPort)")
    }

    /// Tells every shard's keyspace whether to record expirations and new keys, from
    /// notify-keyspace-events (called at start and after CONFIG SET).
    func applyKeyEventTracking() {
        let flags = NotifyFlags(rawValue: config.notifyFlags.load(ordering: .relaxed))
        let bits: UInt8 = (flags.contains(.expired) ? 1 : 0) | (flags.contains(.new) ? 2 : 0) | (flags.contains(.evicted) ? 4 : 0)
        for store in stores { store.keyEvents.tracking.store(bits, ordering: .relaxed) }
    }


    /// systemctl status's one-line summary.
    private func statusLine() -> String {
        "Ready: port \(port), \(shards.count) shards, \(ioBackendName), \(clientCount.load(ordering: .relaxed)) clients, \(blockedClients.load(ordering: .relaxed)) blocked"
    }

    func shardStarted(_ shard: Shard) { started.add(1, ordering: .releasing) }

    /// Recomputes `diskError` from the RDB saves' and the append-only file's state.
    func updateDiskError() {
        let value: UInt8 = snapshots.refusingWrites.load(ordering: .relaxed) ? 1
            : aof?.refusingWrites.load(ordering: .relaxed) == true ? 2 : 0
        diskError.store(value, ordering: .relaxed)
    }

    /// Every shard's change counter as last published (each shard's tick publishes it).
    var publishedDirty: Int { shards.reduce(0) { $0 + $1.publishedDirty.load(ordering: .relaxed) } }

    /// The final save, once the shards stopped: as SHUTDOWN asked, else when save points
    /// are set (as Redis saves on SIGTERM). True when nothing needed saving or it saved.
    private func saveBeforeExit() -> Bool {
        switch ShutdownSave(rawValue: shutdownSave.load(ordering: .acquiring))! {
        case .noSave: return true
        case .save: return snapshots.saveAtShutdown()
        case .asConfigured: return snapshots.savePoints.isEmpty || snapshots.saveAtShutdown()
        }
    }

    func requestShutdown() { shutdownRequested.store(true, ordering: .releasing) }
}

private final class ThreadBody {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

/// Starts a joinable pthread running `body`.
package func spawnThread(_ body: @escaping @Sendable () -> Void) -> pthread_t {
    var tid = pthread_t()
    let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    pthread_create(&tid, nil, { arg in
        let b = Unmanaged<ThreadBody>.fromOpaque(arg!).takeRetainedValue()
        b.body()
        return nil
    }, box)
    return tid
}
