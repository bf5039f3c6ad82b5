import Commands
import Keyspace
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Server configuration: the options Berth acts on, plus Redis's tuning options that it
/// accepts and stores so tools which set them keep working.
///
/// Values are kept as the strings CONFIG GET returns, behind one mutex; the few read on
/// hot paths are mirrored into atomics when they change.
public final class ServerConfig: @unchecked Sendable {
    enum Kind { case integer(min: Int, max: Int), memory, bool, string, enumeration([String]) }

    struct Param {
        let kind: Kind
        let mutable: Bool
        let `default`: String
        /// False for Redis options Berth stores without acting on them.
        let effective: Bool
    }

    static let params: [String: Param] = {
        var p: [String: Param] = [
            "port": Param(kind: .integer(min: 0, max: 65535), mutable: true, default: "6379", effective: true),
            "bind": Param(kind: .string, mutable: true, default: "127.0.0.1", effective: true),
            "shards": Param(kind: .integer(min: 0, max: 1024), mutable: false, default: "0", effective: true),
            "io": Param(kind: .enumeration(["uring", "epoll", "auto"]), mutable: false, default: "auto", effective: true),
            "maxclients": Param(kind: .integer(min: 1, max: 1_000_000), mutable: true, default: "10000", effective: true),
            "requirepass": Param(kind: .string, mutable: true, default: "", effective: true),
            "timeout": Param(kind: .integer(min: 0, max: Int(Int32.max)), mutable: true, default: "0", effective: true),
            "tcp-keepalive": Param(kind: .integer(min: 0, max: Int(Int32.max)), mutable: true, default: "300", effective: true),
            "loglevel": Param(kind: .enumeration(["debug", "verbose", "notice", "warning", "nothing"]), mutable: true, default: "notice", effective: true),
            "logfile": Param(kind: .string, mutable: false, default: "", effective: true),
            "proto-max-bulk-len": Param(kind: .memory, mutable: true, default: "536870912", effective: true),
            "client-query-buffer-limit": Param(kind: .memory, mutable: true, default: "1073741824", effective: true),
            "databases": Param(kind: .integer(min: 1, max: 1_000_000), mutable: false, default: "16", effective: true),
            "hz": Param(kind: .integer(min: 1, max: 500), mutable: true, default: "10", effective: true),
            "tcp-backlog": Param(kind: .integer(min: 0, max: 65535), mutable: false, default: "511", effective: true),
            // Key-bearing commands in a row on one other shard's keys after which a client
            // moves to that shard (ClientMigration.swift); 0: clients never move.
            "client-migration-streak": Param(kind: .integer(min: 0, max: Int(Int32.max)), mutable: true, default: "64", effective: true),
            "notify-keyspace-events": Param(kind: .string, mutable: true, default: "", effective: true),
            // Milliseconds a script may run before other clients get -BUSY and SCRIPT KILL
            // / FUNCTION KILL may stop it; lua-time-limit is its old name, kept in step.
            "busy-reply-threshold": Param(kind: .integer(min: 0, max: Int.max), mutable: true, default: "5000", effective: true),
            "lua-time-limit": Param(kind: .integer(min: 0, max: Int.max), mutable: true, default: "5000", effective: true),
            // JavaScript functions (TFUNCTION): how long a sync function or block section may
            // hold the shards, what happens then (abort: stop it; kill: let it run), the
            // engine's GC heap cap per library, a process memory limit checked while
            // JavaScript runs (0: none), and where libBerthJS.so is ("": beside the binary).
            "lock-redis-timeout": Param(kind: .integer(min: 1, max: Int(Int32.max)), mutable: true, default: "500", effective: true),
            "library-fatal-failure-policy": Param(kind: .enumeration(["abort", "kill"]), mutable: true, default: "abort", effective: true),
            "execution-threads": Param(kind: .integer(min: 1, max: 32), mutable: false, default: "1", effective: true),
            "js-heap-max-bytes": Param(kind: .memory, mutable: true, default: "268435456", effective: true),
            "js-memory-limit": Param(kind: .memory, mutable: true, default: "0", effective: true),
            "js-library": Param(kind: .string, mutable: false, default: "", effective: true),
            // Writes the effect stream to this file as RESP commands (EffectLog.swift).
            "effect-log": Param(kind: .string, mutable: false, default: "", effective: true),
            // Only the pubsub class acts (Berth has no replicas, and normal clients are unlimited).
            // SLOWLOG (SlowLog.swift): -1 logs nothing, 0 every command.
            "slowlog-log-slower-than": Param(kind: .integer(min: -1, max: Int.max), mutable: true, default: "10000", effective: true),
            "slowlog-max-len": Param(kind: .integer(min: 0, max: Int(Int32.max)), mutable: true, default: "128", effective: true),
            // Where Redis would close a stream node: `~` trimming removes whole nodes (StreamNode.swift).
            "stream-node-max-bytes": Param(kind: .memory, mutable: true, default: "4096", effective: true),
            "stream-node-max-entries": Param(kind: .integer(min: 0, max: Int.max), mutable: true, default: "100", effective: true),
            "client-output-buffer-limit": Param(kind: .string, mutable: true,
                                                default: "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60", effective: true),
        ]
        // Snapshots and the append-only file (SnapshotService.swift, AppendOnlyFile.swift).
        let persistence: [(String, Kind, String)] = [
            ("save", .string, ""), ("appendonly", .bool, "no"), ("appendfsync", .enumeration(["always", "everysec", "no"]), "everysec"),
            ("dbfilename", .string, "dump.rdb"), ("dir", .string, "/var/lib/berth"),
            ("stop-writes-on-bgsave-error", .bool, "yes"), ("rdbcompression", .bool, "yes"), ("rdbchecksum", .bool, "yes"),
            ("appendfilename", .string, "appendonly.aof"), ("appenddirname", .string, "appendonlydir"),
            ("aof-load-truncated", .bool, "yes"), ("auto-aof-rewrite-percentage", .integer(min: 0, max: Int(Int32.max)), "100"),
            ("auto-aof-rewrite-min-size", .memory, "67108864"),
        ]
        // The memory limit and eviction (MemoryLimit.swift, KeyAccess.swift).
        let memory: [(String, Kind, String)] = [
            ("maxmemory", .memory, "0"),
            ("maxmemory-policy", .enumeration(["noeviction", "allkeys-lru", "volatile-lru", "allkeys-lfu", "volatile-lfu", "allkeys-random", "volatile-random", "volatile-ttl"]), "noeviction"),
            ("maxmemory-samples", .integer(min: 1, max: 64), "5"), ("maxmemory-eviction-tenacity", .integer(min: 0, max: 100), "10"),
            ("lfu-log-factor", .integer(min: 0, max: Int(Int32.max)), "10"), ("lfu-decay-time", .integer(min: 0, max: Int(Int32.max)), "1"),
        ]
        // Accepted for compatibility; Berth has no listpacks or replication yet.
        let stored: [(String, Kind, String)] = [
            ("daemonize", .bool, "no"),
            ("protected-mode", .bool, "yes"),
            ("hash-max-listpack-entries", .integer(min: 0, max: Int.max), "512"), ("hash-max-listpack-value", .integer(min: 0, max: Int.max), "64"),
            ("hash-max-ziplist-entries", .integer(min: 0, max: Int.max), "512"), ("hash-max-ziplist-value", .integer(min: 0, max: Int.max), "64"),
            ("list-max-listpack-size", .integer(min: Int.min, max: Int.max), "-2"), ("list-max-ziplist-size", .integer(min: Int.min, max: Int.max), "-2"),
            ("list-compress-depth", .integer(min: 0, max: Int.max), "0"),
            ("set-max-intset-entries", .integer(min: 0, max: Int.max), "512"), ("set-max-listpack-entries", .integer(min: 0, max: Int.max), "128"),
            ("set-max-listpack-value", .integer(min: 0, max: Int.max), "64"),
            ("zset-max-listpack-entries", .integer(min: 0, max: Int.max), "128"), ("zset-max-listpack-value", .integer(min: 0, max: Int.max), "64"),
            ("zset-max-ziplist-entries", .integer(min: 0, max: Int.max), "128"), ("zset-max-ziplist-value", .integer(min: 0, max: Int.max), "64"),
            ("activerehashing", .bool, "yes"), ("activedefrag", .bool, "no"), ("lazyfree-lazy-eviction", .bool, "no"),
            ("lazyfree-lazy-expire", .bool, "no"), ("lazyfree-lazy-server-del", .bool, "no"), ("lazyfree-lazy-user-del", .bool, "no"),
            ("lazyfree-lazy-user-flush", .bool, "no"), ("replica-lazy-flush", .bool, "no"),
            ("latency-monitor-threshold", .integer(min: 0, max: Int.max), "0"),
            // Per-command latency histograms (INFO latencystats, LatencyStats.swift).
            ("latency-tracking", .bool, "yes"), ("latency-tracking-info-percentiles", .string, "50 99 99.9"),
            ("io-threads", .integer(min: 1, max: 128), "1"), ("io-threads-do-reads", .bool, "no"),
            ("dynamic-hz", .bool, "yes"), ("aof-use-rdb-preamble", .bool, "yes"), ("aof-rewrite-incremental-fsync", .bool, "yes"),
            ("no-appendfsync-on-rewrite", .bool, "no"), ("aof-timestamp-enabled", .bool, "no"),
            ("repl-diskless-sync", .bool, "yes"), ("min-replicas-to-write", .integer(min: 0, max: Int.max), "0"),
            ("repl-backlog-size", .memory, "1048576"), ("repl-backlog-ttl", .integer(min: 0, max: Int.max), "3600"),
            ("replicaof", .string, ""), ("slaveof", .string, ""),
            ("supervised", .enumeration(["no", "upstart", "systemd", "auto"]), "no"), ("pidfile", .string, ""),
            ("unixsocket", .string, ""), ("unixsocketperm", .integer(min: 0, max: 0o777), "0"),
            ("enable-debug-command", .enumeration(["yes", "no", "local"]), "local"), ("jemalloc-bg-thread", .bool, "yes"),
            ("active-expire-effort", .integer(min: 1, max: 10), "1"), ("maxmemory-clients", .memory, "0"),
            ("tracking-table-max-keys", .integer(min: 0, max: Int.max), "1000000"), ("acllog-max-len", .integer(min: 0, max: Int.max), "128"),
            // Redis's hidden debugging settings (ServerConfig.hidden).
            ("key-load-delay", .integer(min: Int(Int32.min), max: Int(Int32.max)), "0"),
            ("rdb-key-save-delay", .integer(min: Int(Int32.min), max: Int(Int32.max)), "0"),
            ("loading-process-events-interval-bytes", .integer(min: 1024, max: Int(Int32.max)), "2097152"),
            ("watchdog-period", .integer(min: 0, max: Int(Int32.max)), "0"), ("use-exit-on-panic", .bool, "no"),
        ]
        // Redis refuses these at run time too.
        let immutable: Set<String> = ["daemonize", "supervised", "pidfile", "unixsocket", "unixsocketperm", "io-threads",
                                      "io-threads-do-reads", "enable-debug-command", "appendfilename", "appenddirname"]
        for (name, kind, def) in stored {
            p[name] = Param(kind: kind, mutable: !immutable.contains(name), default: def, effective: false)
        }
        for (name, kind, def) in persistence + memory {
            p[name] = Param(kind: kind, mutable: !immutable.contains(name), default: def, effective: true)
        }
        return p
    }()

    private let values: Mutex<[String: String]>

    // Mirrors of values read on hot paths.
    package let maxBulkLength = Atomic<Int>(536_870_912)
    let queryBufferLimit = Atomic<Int>(1_073_741_824)
    let maxClients = Atomic<Int>(10000)
    let slowlogSlowerThan = Atomic<Int>(10000)
    package let slowlogMaxLength = Atomic<Int>(128)
    let idleTimeoutSeconds = Atomic<Int>(0)
    let hasPassword = Atomic<Bool>(false)
    /// client-output-buffer-limit pubsub: hard bytes, soft bytes, soft seconds (0 = none).
    let pubsubHardLimit = Atomic<Int>(33_554_432)
    let pubsubSoftLimit = Atomic<Int>(8_388_608)
    let pubsubSoftSeconds = Atomic<Int>(60)
    /// latency-tracking: commands are recorded in the latency histograms.
    package let latencyTracking = Atomic<Bool>(true)
    /// The normal class (every other client); Redis's default is no limit.
    let normalHardLimit = Atomic<Int>(0)
    let normalSoftLimit = Atomic<Int>(0)
    let normalSoftSeconds = Atomic<Int>(0)
    /// The replica ("slave") class, which Redis applies to MONITOR clients too.
    let replicaHardLimit = Atomic<Int>(268_435_456)
    let replicaSoftLimit = Atomic<Int>(67_108_864)
    let replicaSoftSeconds = Atomic<Int>(60)
    /// notify-keyspace-events, parsed (`NotifyFlags.rawValue`).
    let notifyFlags = Atomic<UInt16>(0)
    /// busy-reply-threshold in milliseconds.
    package let busyReplyThreshold = Atomic<Int>(5000)
    let migrationStreak = Atomic<Int>(64)
    /// maxmemory in bytes (0: no limit), maxmemory-policy (`EvictionPolicy`),
    /// maxmemory-samples and maxmemory-eviction-tenacity.
    package let maxMemory = Atomic<Int>(0)
    /// maxmemory-clients: a size, or (when the percentage is set) a share of maxmemory.
    let maxClientsMemory = Atomic<Int>(0)
    let maxClientsMemoryPercent = Atomic<Int>(0)
    let evictionPolicy = Atomic<UInt8>(EvictionPolicy.noEviction.rawValue)
    let evictionSamples = Atomic<Int>(5)
    let evictionTenacity = Atomic<Int>(10)

    public init() {
        var v: [String: String] = [:]
        for (name, p) in ServerConfig.params { v[name] = p.default }
        values = Mutex(v)
    }

    /// `loadmodule` lines in order: the path, then the module's arguments.
    public private(set) var moduleLoads: [[String]] = []

    public func get(_ name: String) -> String { values.withLock { $0[name] ?? "" } }

    public func int(_ name: String) -> Int { Int(get(name)) ?? 0 }

    /// Name/value pairs matching any of the glob patterns, for CONFIG GET.
    /// Settings Redis keeps out of CONFIG GET's pattern matches: only asking for one by its
    /// exact name shows it. They slow loading and saving down for tests.
    static let hidden: Set<String> = ["key-load-delay", "rdb-key-save-delay", "loading-process-events-interval-bytes",
                                      "watchdog-period", "use-exit-on-panic"]

    /// CONFIG GET: a name without glob characters is looked up as given (and answered in
    /// the client's spelling, as Redis does); a pattern matches every setting but hidden
    /// ones. A setting two arguments find is answered once, as the first found it.
    public func matching(_ patterns: [String]) -> [(String, String)] {
        let all = values.withLock { $0 }
        var found: [String: String] = [:]  // setting -> name as answered
        for pattern in patterns {
            if !pattern.contains(where: { "*?[".contains($0) }) {
                let name = pattern.lowercased()
                if all[name] != nil && found[name] == nil { found[name] = pattern }
                continue
            }
            for name in all.keys where found[name] == nil && !Self.hidden.contains(name) && Glob.matchesName(pattern, name) {
                found[name] = name
            }
        }
        return found.keys.sorted().map { (found[$0]!, all[$0]!) }
    }

    public enum SetError: Error, Equatable {
        case unknown(String)
        case immutable(String)
        case invalid(String, String)
    }

    /// Validates and stores one option. `startup` allows immutable options.
    public func set(_ rawName: String, _ value: String, startup: Bool = false) throws(SetError) {
        if rawName.lowercased() == "loadmodule" {
            // Repeatable, and only at start: `loadmodule /path/mod.so [args...]`.
            guard startup else { throw .immutable("loadmodule") }
            let words = value.split(separator: " ").map(String.init)
            guard !words.isEmpty else { throw .invalid("loadmodule", "a module path is required") }
            values.withLock { _ in moduleLoads.append(words) }
            return
        }
        let (name, normalized) = try validate(rawName, value, startup: startup)
        values.withLock { v in
            v[name] = normalized
            if name == "busy-reply-threshold" { v["lua-time-limit"] = normalized }
            if name == "lua-time-limit" { v["busy-reply-threshold"] = normalized }
        }
        applyMirror(name, normalized)
    }

    /// Checks an option without storing it; returns its canonical name and value.
    public func validate(_ rawName: String, _ value: String, startup: Bool = false) throws(SetError) -> (String, String) {
        let name = rawName.lowercased()
        guard let p = ServerConfig.params[name] else { throw .unknown(rawName) }
        if !p.mutable && !startup {
            // Berth's own fixed settings take the value they have, so that a tool writing
            // CONFIG GET * back works; Redis's immutable ones are refused as Redis does.
            guard Self.ownFixed.contains(name), (try? normalize(name, p.kind, value)) == get(name) else {
                throw .immutable(name)
            }
        }
        if name == "dir" && !startup {
            // As Redis (which changes into it): a directory that is not there, or cannot be
            // written, is refused at run time rather than found out at the next save.
            var st = stat()
            guard stat(value, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
                throw .invalid(name, "No such file or directory")
            }
            guard access(value, W_OK | X_OK) == 0 else { throw .invalid(name, "Permission denied") }
        }
        if name == "save" {
            // Pairs of seconds and changes, as Redis checks them.
            let words = value.split(separator: " ")
            guard words.count % 2 == 0, words.allSatisfy({ Int($0).map { $0 >= 0 } ?? false }) else {
                throw .invalid(name, "Invalid save parameters")
            }
            return (name, words.joined(separator: " "))
        }
        return (name, try normalize(name, p.kind, value))
    }

    /// Settings only Berth has that cannot change at run time.
    static let ownFixed: Set<String> = ["shards", "io", "execution-threads", "js-library", "effect-log"]

    private func normalize(_ name: String, _ kind: Kind, _ value: String) throws(SetError) -> String {
        switch kind {
        case .integer(let lo, let hi):
            guard let n = Int(value) else { throw .invalid(name, "argument couldn't be parsed into an integer") }
            guard n >= lo && n <= hi else { throw .invalid(name, "argument must be between \(lo) and \(hi) inclusive") }
            return String(n)
        case .memory:
            if name == "maxmemory-clients" {
                // A share of maxmemory ("10%") or a size, as Redis takes it.
                if value.hasSuffix("%") {
                    guard let p = Int(value.dropLast()), p >= 0 else {
                        throw .invalid(name, "argument must be a memory or percent value")
                    }
                    guard p <= 100 else { throw .invalid(name, "percentage argument must be less or equal to 100") }
                    return "\(p)%"
                }
                guard let n = ServerConfig.parseMemory(value), n >= 0 else {
                    throw .invalid(name, "argument must be a memory or percent value")
                }
                return String(n)
            }
            guard let n = ServerConfig.parseMemory(value), n >= 0 else {
                throw .invalid(name, "argument must be a memory value")
            }
            return String(n)
        case .bool:
            switch value.lowercased() {
            case "yes": return "yes"
            case "no": return "no"
            default: throw .invalid(name, "argument must be 'yes' or 'no'")
            }
        case .enumeration(let allowed):
            guard allowed.contains(value.lowercased()) else { throw .invalid(name, "argument(s) must be one of the following: \(allowed.joined(separator: ", "))") }
            return value.lowercased()
        case .string:
            if name == "client-output-buffer-limit" { return try normalizeOutputLimits(value) }
            if name == "latency-tracking-info-percentiles" { return try normalizePercentiles(value) }
            if name == "notify-keyspace-events" {
                guard let flags = NotifyFlags.parse(value) else { throw .invalid(name, "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.") }
                return flags.description
            }
            return value
        }
    }

    /// `class hard soft seconds` groups (normal, replica/slave, pubsub), merged into the
    /// current value so that setting one class keeps the others, as Redis does.
    private func normalizeOutputLimits(_ value: String) throws(SetError) -> String {
        let words = value.split(separator: " ").map(String.init)
        let name = "client-output-buffer-limit"
        guard !words.isEmpty, words.count % 4 == 0 else { throw .invalid(name, "Invalid argument") }
        var classes: [String: [Int]] = [:]
        let current = get(name).split(separator: " ").map(String.init)
        var i = 0
        while i + 3 < current.count {
            classes[current[i]] = current[(i + 1)...(i + 3)].compactMap { Int($0) }
            i += 4
        }
        i = 0
        while i < words.count {
            var cls = words[i].lowercased()
            if cls == "replica" { cls = "slave" }
            guard ["normal", "slave", "pubsub"].contains(cls),
                  let hard = ServerConfig.parseMemory(words[i + 1]), let soft = ServerConfig.parseMemory(words[i + 2]),
                  let seconds = Int(words[i + 3]), hard >= 0, soft >= 0, seconds >= 0 else {
                throw .invalid(name, "Invalid argument")
            }
            classes[cls] = [hard, soft, seconds]
            i += 4
        }
        return ["normal", "slave", "pubsub"].map { c in
            let v = classes[c] ?? [0, 0, 0]
            return "\(c) \(v[0]) \(v[1]) \(v[2])"
        }.joined(separator: " ")
    }

    /// Percentiles between 0 and 100, printed as Redis prints them ("50.0" -> "50").
    private func normalizePercentiles(_ value: String) throws(SetError) -> String {
        var names: [String] = []
        for word in value.split(separator: " ") {
            guard let p = Double(word) else {
                throw .invalid("latency-tracking-info-percentiles", "Invalid latency-tracking-info-percentiles parameters")
            }
            guard p >= 0 && p <= 100 else {
                throw .invalid("latency-tracking-info-percentiles", "latency-tracking-info-percentiles parameters should sit between [0.0,100.0]")
            }
            names.append(LatencyHistogram.name(p))
        }
        return names.joined(separator: " ")
    }

    /// The percentiles INFO latencystats reports.
    var latencyPercentiles: [Double] {
        self.get("latency-tracking-info-percentiles").split(separator: " ").compactMap { Double($0) }
    }

    private func applyMirror(_ name: String, _ v: String) {
        let n = Int(v) ?? 0
        switch name {
        case "proto-max-bulk-len": maxBulkLength.store(n, ordering: .relaxed)
        case "client-query-buffer-limit": queryBufferLimit.store(n, ordering: .relaxed)
        case "maxclients": maxClients.store(n, ordering: .relaxed)
        case "slowlog-log-slower-than": slowlogSlowerThan.store(n, ordering: .relaxed)
        case "slowlog-max-len": slowlogMaxLength.store(n, ordering: .relaxed)
        case "timeout": idleTimeoutSeconds.store(n, ordering: .relaxed)
        case "client-migration-streak": migrationStreak.store(n, ordering: .relaxed)
        case "busy-reply-threshold", "lua-time-limit": busyReplyThreshold.store(n, ordering: .relaxed)
        case "requirepass": hasPassword.store(!v.isEmpty, ordering: .releasing)
        case "stream-node-max-bytes": StreamNodeLimits.maxBytes.store(n, ordering: .relaxed)
        case "stream-node-max-entries": StreamNodeLimits.maxEntries.store(n, ordering: .relaxed)
        case "latency-tracking": latencyTracking.store(v == "yes", ordering: .relaxed)
        case "lazyfree-lazy-eviction": LazyFree.onEviction.store(v == "yes", ordering: .relaxed)
        case "lazyfree-lazy-expire": LazyFree.onExpire.store(v == "yes", ordering: .relaxed)
        case "lazyfree-lazy-server-del": LazyFree.onServerDelete.store(v == "yes", ordering: .relaxed)
        case "lazyfree-lazy-user-del": LazyFree.onUserDelete.store(v == "yes", ordering: .relaxed)
        case "lazyfree-lazy-user-flush": LazyFree.onUserFlush.store(v == "yes", ordering: .relaxed)
        case "maxmemory-clients":
            maxClientsMemoryPercent.store(v.hasSuffix("%") ? Int(v.dropLast()) ?? 0 : 0, ordering: .relaxed)
            maxClientsMemory.store(v.hasSuffix("%") ? 0 : n, ordering: .relaxed)
        case "maxmemory":
            maxMemory.store(n, ordering: .relaxed)
            noteIntegerSharing()
        case "maxmemory-policy":
            let policy = EvictionPolicy(name: v) ?? .noEviction
            evictionPolicy.store(policy.rawValue, ordering: .relaxed)
            KeyAccess.countsFrequency.store(policy.countsFrequency, ordering: .relaxed)
            noteIntegerSharing()
        case "hash-max-listpack-entries", "hash-max-ziplist-entries": EncodingLimits.hashEntries.store(n, ordering: .relaxed)
        case "hash-max-listpack-value", "hash-max-ziplist-value": EncodingLimits.hashValue.store(n, ordering: .relaxed)
        case "zset-max-listpack-entries", "zset-max-ziplist-entries": EncodingLimits.zsetEntries.store(n, ordering: .relaxed)
        case "zset-max-listpack-value", "zset-max-ziplist-value": EncodingLimits.zsetValue.store(n, ordering: .relaxed)
        case "set-max-intset-entries": EncodingLimits.setIntsetEntries.store(n, ordering: .relaxed)
        case "set-max-listpack-entries": EncodingLimits.setEntries.store(n, ordering: .relaxed)
        case "set-max-listpack-value": EncodingLimits.setValue.store(n, ordering: .relaxed)
        case "list-max-listpack-size", "list-max-ziplist-size": EncodingLimits.listSize.store(n, ordering: .relaxed)
        case "maxmemory-samples": evictionSamples.store(n, ordering: .relaxed)
        case "maxmemory-eviction-tenacity": evictionTenacity.store(n, ordering: .relaxed)
        case "lfu-log-factor": KeyAccess.logFactor.store(n, ordering: .relaxed)
        case "lfu-decay-time": KeyAccess.decayMinutes.store(n, ordering: .relaxed)
        case "notify-keyspace-events":
            let f = NotifyFlags.parse(v) ?? NotifyFlags()
            notifyFlags.store(f.isActive ? f.rawValue : 0, ordering: .relaxed)
        case "client-output-buffer-limit":
            let words = v.split(separator: " ")
            if let at = words.firstIndex(of: "normal"), at + 3 < words.count {
                normalHardLimit.store(Int(words[at + 1]) ?? 0, ordering: .relaxed)
                normalSoftLimit.store(Int(words[at + 2]) ?? 0, ordering: .relaxed)
                normalSoftSeconds.store(Int(words[at + 3]) ?? 0, ordering: .relaxed)
            }
            if let at = words.firstIndex(of: "pubsub"), at + 3 < words.count {
                pubsubHardLimit.store(Int(words[at + 1]) ?? 0, ordering: .relaxed)
                pubsubSoftLimit.store(Int(words[at + 2]) ?? 0, ordering: .relaxed)
                pubsubSoftSeconds.store(Int(words[at + 3]) ?? 0, ordering: .relaxed)
            }
            if let at = words.firstIndex(where: { $0 == "slave" || $0 == "replica" }), at + 3 < words.count {
                replicaHardLimit.store(Int(words[at + 1]) ?? 0, ordering: .relaxed)
                replicaSoftLimit.store(Int(words[at + 2]) ?? 0, ordering: .relaxed)
                replicaSoftSeconds.store(Int(words[at + 3]) ?? 0, ordering: .relaxed)
            }
        default: break
        }
    }

    private func noteIntegerSharing() {
        let policy = EvictionPolicy(rawValue: evictionPolicy.load(ordering: .relaxed)) ?? .noEviction
        let ranked = policy != .noEviction && policy != .allKeysRandom && policy != .volatileRandom && policy != .volatileTTL
        KeyAccess.sharesNoIntegers.store(maxMemory.load(ordering: .relaxed) > 0 && ranked, ordering: .relaxed)
        KeyAccess.policyRanksAccess.store(ranked, ordering: .relaxed)
    }

    /// Redis memory units: k=1000, kb=1024, m, mb, g, gb; case-insensitive.
    public static func parseMemory(_ s: String) -> Int? {
        let lower = s.lowercased()
        let units: [(String, Int)] = [("kb", 1024), ("mb", 1 << 20), ("gb", 1 << 30), ("k", 1000), ("m", 1_000_000), ("g", 1_000_000_000), ("b", 1)]
        for (suffix, mul) in units where lower.hasSuffix(suffix) {
            guard let n = Int(lower.dropLast(suffix.count)) else { return nil }
            return n.multipliedReportingOverflow(by: mul).overflow ? nil : n * mul
        }
        return Int(lower)
    }

    /// Reads a redis.conf-style file: `name value...` per line, `#` comments.
    public func load(file contents: String) throws(ConfigFileError) {
        // Several `save` lines add up, as in redis.conf (`save ""` clears them).
        var savePoints: [String] = []
        for (i, rawLine) in contents.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: " \t\r")
            if line.isEmpty || line.hasPrefix("#") { continue }
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map { unquote(String($0)) }
            guard words.count >= 2 || (words.count == 1 && words[0].lowercased() == "save") else {
                throw ConfigFileError(line: i + 1, text: line, reason: "wrong number of arguments")
            }
            var value = words.dropFirst().joined(separator: " ")
            if words[0].lowercased() == "save" {
                let points = value.trimmingCharacters(in: " ")
                if points.isEmpty { savePoints = [] } else { savePoints.append(points) }
                value = savePoints.joined(separator: " ")
            }
            do {
                try set(words[0], value, startup: true)
            } catch {
                let reason: String
                switch error {
                case .unknown: reason = "Bad directive or wrong number of arguments"
                case .immutable: reason = "option cannot be set"
                case .invalid(_, let why): reason = why
                }
                throw ConfigFileError(line: i + 1, text: line, reason: reason)
            }
        }
    }

    private func unquote(_ s: String) -> String {
        if s.count >= 2, (s.hasPrefix("\"") && s.hasSuffix("\"")) || (s.hasPrefix("'") && s.hasSuffix("'")) {
            return String(s.dropFirst().dropLast())
        }
        return s
    }
}

public struct ConfigFileError: Error, CustomStringConvertible {
    public let line: Int
    public let text: String
    public let reason: String
    public var description: String {
        "*** FATAL CONFIG FILE ERROR ***\nReading the configuration file, at line \(line)\n>>> '\(text)'\n\(reason)"
    }
}

extension StringProtocol {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}
