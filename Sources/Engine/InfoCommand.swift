import CAllocator
import CUring
import Commands
import Keyspace
import RESP
#if canImport(Glibc)
import Glibc
#endif

/// INFO: sections and field names as Redis names them, summed over the shards.
enum InfoCommand {
    struct ShardReport: Sendable {
        var stats: ShardStats
        var hits: Int
        var misses: Int
        var dirty: Int
        var keys: [Int]
        var expires: [Int]
        var expired: Int
        var evicted: Int
        var blockingKeys: Int
        var blockingKeysOnNoKey: Int
        var timedClients: Int
        var pausedClients: Int
        var pubsubClients: Int
        /// Latency histograms by command id, when INFO asked for latencystats.
        var latencies: [Int: [UInt64]]
    }

    static let defaultSections = ["server", "clients", "memory", "persistence", "stats", "replication", "cpu", "cluster", "keyspace"]

    static func run(_ shard: Shard, _ conn: Connection, _ args: [Bytes], _ reply: ReplyWriter) -> Bool {
        var wanted = Set(args.dropFirst().map { $0.string.lowercased() })
        if wanted.isEmpty || wanted.contains("default") { wanted.formUnion(defaultSections) }
        if wanted.contains("all") || wanted.contains("everything") { wanted.formUnion(defaultSections + ["commandstats", "errorstats", "latencystats"]) }
        let sections = wanted
        shard.gather(conn, work: { s -> ShardReport in
            // Behind a busy script the keyspace counts are left out (zeros).
            let locked = s.section.enter(s.index, .refuseWhenBusy)
            let keys = locked ? s.store.databases.map { $0.count } : Array(repeating: 0, count: s.store.databases.count)
            let expires = locked ? s.store.databases.map { $0.volatileCount } : keys
            let expired = locked ? s.store.databases.reduce(0) { $0 + $1.expiredTotal } : 0
            let evicted = locked ? s.store.databases.reduce(0) { $0 + $1.evictedTotal } : 0
            let blockingKeys = locked ? s.waiters.keyCount : 0
            let blockingKeysOnNoKey = locked ? s.waiters.groupReaderKeyCount : 0
            if locked { s.section.exit(s.index) }
            return ShardReport(stats: s.stats, hits: s.context.keyspaceHits, misses: s.context.keyspaceMisses,
                               dirty: s.context.dirty, keys: keys, expires: expires, expired: expired, evicted: evicted,
                               blockingKeys: blockingKeys, blockingKeysOnNoKey: blockingKeysOnNoKey, timedClients: s.blocking.timers.live, pausedClients: s.paused.count,
                               pubsubClients: s.clients.all.filter { $0.isSubscribed }.count,
                               latencies: sections.contains("latencystats") ? s.latencies.snapshot() : [:])
        }, finish: { s, c, reports in
            s.writer(for: c).verbatim(render(s.server, reports, sections))
        })
        return false
    }

    /// One latency_percentiles_usec_<cmd> line per command recorded on any shard, from
    /// the sum of the shards' histograms; none while latency-tracking is off.
    private static func latencyFields(_ server: Server, _ reports: [ShardReport]) -> [(String, String)] {
        guard server.config.latencyTracking.load(ordering: .relaxed) else { return [] }
        var merged: [Int: [UInt64]] = [:]
        for r in reports {
            for (id, counts) in r.latencies {
                if var m = merged[id] {
                    for i in m.indices { m[i] += counts[i] }
                    merged[id] = m
                } else {
                    merged[id] = counts
                }
            }
        }
        let percentiles = server.config.latencyPercentiles
        return merged.map { (server.commandName($0.key), $0.value) }.sorted { $0.0 < $1.0 }
            .map { LatencyHistogram.line(command: $0.0, counts: $0.1, percentiles: percentiles) }
    }

    static func render(_ server: Server, _ reports: [ShardReport], _ sections: Set<String>) -> String {
        var out = ""
        func section(_ name: String, _ fields: [(String, String)]) {
            guard sections.contains(name.lowercased()) else { return }
            if !out.isEmpty { out += "\r\n" }
            out += "# \(name)\r\n"
            for (k, v) in fields { out += "\(k):\(v)\r\n" }
        }
        let now = ShardStore.nowMilliseconds()
        let uptime = (now - server.startTime) / 1000
        section("Server", [
            ("redis_version", Server.redisCompatibleVersion), ("redis_git_sha1", "00000000"), ("redis_git_dirty", "0"),
            ("berth_version", Server.version),
            ("redis_mode", "standalone"), ("os", "Linux"), ("arch_bits", "64"),
            ("multiplexing_api", server.ioBackendName), ("process_id", String(getpid())),
            ("tcp_port", String(server.port)), ("server_time_usec", String(now * 1000)),
            ("uptime_in_seconds", String(uptime)), ("uptime_in_days", String(uptime / 86400)),
            ("hz", server.config.get("hz")), ("shards", String(server.shards.count)),
            ("executable", CommandLine.arguments.first ?? ""), ("config_file", server.configFile ?? ""),
        ])
        section("Clients", [
            ("connected_clients", String(server.clientCount.load(ordering: .relaxed))),
            ("maxclients", server.config.get("maxclients")),
            ("blocked_clients", String(server.blockedClients.load(ordering: .relaxed))),
            ("tracking_clients", "0"), ("pubsub_clients", String(reports.reduce(0) { $0 + $1.pubsubClients })),
            ("clients_in_timeout_table", String(reports.reduce(0) { $0 + $1.timedClients })),
            ("total_watched_keys", String(server.watchedKeys.load(ordering: .relaxed))),
            ("total_blocking_keys", String(reports.reduce(0) { $0 + $1.blockingKeys })),
            ("total_blocking_keys_on_nokey", String(reports.reduce(0) { $0 + $1.blockingKeysOnNoKey })),
            ("paused_clients", String(reports.reduce(0) { $0 + $1.pausedClients })),
        ])
        let used = Int(berth_allocated_bytes())
        let rss = Int(berth_rss_bytes())
        let peak = max(used, server.peakMemory(used))
        let maxmemory = server.config.maxMemory.load(ordering: .relaxed)
        let system = Int(sysconf(Int32(_SC_PHYS_PAGES))) * Int(sysconf(Int32(_SC_PAGESIZE)))
        section("Memory", [
            ("used_memory", String(used)), ("used_memory_human", human(used)),
            ("used_memory_rss", String(rss)), ("used_memory_rss_human", human(rss)),
            ("used_memory_peak", String(peak)), ("used_memory_peak_human", human(peak)),
            ("used_memory_peak_perc", format2(peak > 0 ? Double(used) * 100 / Double(peak) : 0) + "%"),
            ("used_memory_startup", String(server.startupMemory)),
            ("total_system_memory", String(system)), ("total_system_memory_human", human(system)),
            ("maxmemory", String(maxmemory)), ("maxmemory_human", human(maxmemory)),
            ("maxmemory_policy", server.config.get("maxmemory-policy")),
            ("mem_fragmentation_ratio", String(format2(used > 0 ? Double(rss) / Double(used) : 0))),
            ("mem_fragmentation_bytes", String(rss - used)),
            ("mem_not_counted_for_evict", "0"),
            ("mem_clients_normal", String(server.clientMemory.load(ordering: .relaxed))),
            ("mem_allocator", String(cString: berth_allocator_name())), ("lazyfree_pending_objects", String(LazyFree.shared.pending)),
            ("lazyfreed_objects", String(LazyFree.shared.freedTotal)),
            ("number_of_cached_scripts", String(server.extensions.scripting.cachedScriptCount)),
            ("number_of_functions", String(server.extensions.scripting.functionCount)),
        ])
        let dirty = reports.reduce(0) { $0 + $1.dirty }
        let loading = server.loading.load(ordering: .relaxed)
        section("Persistence", [("loading", loading ? "1" : "0"), ("async_loading", "0")]
            + (loading ? [("loading_start_time", String(server.loadingStarted.load(ordering: .relaxed) / 1000))] : [])
            + server.snapshots.infoFields(dirtyNow: dirty)
            + (server.aof?.infoFields()
               ?? [("aof_enabled", "0"), ("aof_rewrite_in_progress", "0"), ("aof_rewrite_scheduled", "0"),
                   ("aof_last_rewrite_time_sec", "-1"), ("aof_current_rewrite_time_sec", "-1"),
                   ("aof_last_bgrewrite_status", "ok"), ("aof_rewrites", "0"), ("aof_rewrites_consecutive_failures", "0"),
                   ("aof_last_write_status", "ok"), ("aof_last_cow_size", "0"),
                   ("module_fork_in_progress", "0"), ("module_fork_last_cow_size", "0")]))
        let sum = { (f: (ShardReport) -> Int) in reports.reduce(0) { $0 + f($1) } }
        section("Stats", [
            ("total_connections_received", String(sum { $0.stats.connectionsReceived })),
            ("total_commands_processed", String(sum { $0.stats.commandsProcessed })),
            ("instantaneous_ops_per_sec", "0"),
            ("total_net_input_bytes", String(sum { $0.stats.netInputBytes })),
            ("total_net_output_bytes", String(sum { $0.stats.netOutputBytes })),
            ("rejected_connections", String(sum { $0.stats.rejectedConnections })),
            ("client_migrations", String(sum { $0.stats.clientMigrations })),
            ("pubsub_channels", String(server.pubsub.count(.channel))),
            ("pubsub_patterns", String(server.pubsub.count(.pattern))),
            ("pubsubshard_channels", String(server.pubsub.count(.shardChannel))),
            ("expired_keys", String(sum { $0.expired })), ("evicted_keys", String(sum { $0.evicted })),
            ("evicted_clients", String(sum { $0.stats.evictedClients })),
            ("keyspace_hits", String(sum { $0.hits })), ("keyspace_misses", String(sum { $0.misses })),
            ("total_error_replies", String(server.errorStats.total)),
            ("client_query_buffer_limit_disconnections", String(sum { $0.stats.queryLimitDisconnections })),
            ("client_output_buffer_limit_disconnections", String(sum { $0.stats.outputLimitDisconnections })),
            // Berth's own: how often scripts widened their atomic section (ScriptSection.swift).
            ("script_section_restarts", String(server.scriptBusy.restarts.load(ordering: .relaxed))),
            ("script_section_escalations", String(server.scriptBusy.escalations.load(ordering: .relaxed))),
        ])
        section("Replication", [("role", "master"), ("connected_slaves", "0"), ("master_repl_offset", "0")])
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        section("CPU", [
            ("used_cpu_sys", format6(usage.ru_stime)), ("used_cpu_user", format6(usage.ru_utime)),
        ])
        if sections.contains("commandstats") {
            var fields: [(String, String)] = []
            let ids = server.commands.specs.values.map { ($0.name, $0.id) } + server.extensions.modules.commandSpecs.map { ($0.name, $0.id) }
                + server.subcommandStatIDs.map { ($0.key, $0.value) }
            for (name, id) in ids.sorted(by: { $0.0 < $1.0 }) {
                let calls = sum { $0.stats.calls[id] }
                let rejected = sum { $0.stats.rejectedCalls[id] }
                guard calls > 0 || rejected > 0 else { continue }
                let usec = sum { $0.stats.microseconds[id] }
                let failed = sum { $0.stats.failedCalls[id] }
                fields.append(("cmdstat_\(name)",
                               "calls=\(calls),usec=\(usec),usec_per_call=\(format2(calls > 0 ? Double(usec) / Double(calls) : 0)),rejected_calls=\(rejected),failed_calls=\(failed)"))
            }
            section("Commandstats", fields)
        }
        if sections.contains("errorstats") { section("Errorstats", server.errorStats.fields) }
        if sections.contains("latencystats") { section("Latencystats", latencyFields(server, reports)) }
        section("Cluster", [("cluster_enabled", "0")])  // clients (redis-py's suite) read it
        var keyspace: [(String, String)] = []
        for db in 0..<server.databaseCount {
            let keys = sum { $0.keys[db] }
            guard keys > 0 else { continue }
            keyspace.append(("db\(db)", "keys=\(keys),expires=\(sum { $0.expires[db] }),avg_ttl=0"))
        }
        section("Keyspace", keyspace)
        return out
    }

    static func human(_ n: Int) -> String {
        let d = Double(n)
        if n >= 1 << 30 { return format2(d / Double(1 << 30)) + "G" }
        if n >= 1 << 20 { return format2(d / Double(1 << 20)) + "M" }
        if n >= 1 << 10 { return format2(d / Double(1 << 10)) + "K" }
        return "\(n)B"
    }

    static func format2(_ d: Double) -> String {
        let scaled = (d * 100).rounded() / 100
        var s = String(scaled)
        if let dot = s.firstIndex(of: ".") {
            let decimals = s.distance(from: dot, to: s.endIndex) - 1
            if decimals < 2 { s += String(repeating: "0", count: 2 - decimals) }
        }
        return s
    }

    static func format6(_ t: timeval) -> String {
        let micro = String(t.tv_usec)
        return "\(t.tv_sec).\(String(repeating: "0", count: max(0, 6 - micro.count)))\(micro)"
    }
}
