import CAllocator
import CUring
import Commands
import Keyspace
import RESP
#if canImport(Glibc)
import Glibc
#endif

/// MEMORY USAGE / STATS / DOCTOR / PURGE / MALLOC-STATS / HELP.
///
/// USAGE reads a key, so it runs as a data command under the key's shard lock (a spec of
/// its own, not in the command table); the rest report on the process: the allocator's
/// figures (glibc malloc, the same ones INFO memory shows), and PURGE hands free heap pages
/// back to the kernel with malloc_trim.
enum MemoryCommand {
    static let usageSpec = CommandSpec("memory", arity: -3, flags: [.readonly, .sharedRead], keys: KeySpec(2, 2, 1)) { ctx throws(CommandError) in
        var samples = 5
        var i = 3
        while i < ctx.args.count {
            guard ctx.option(i, "samples"), i + 1 < ctx.args.count else { throw .syntax }
            let n = try ctx.int(i + 1)
            guard n >= 0 else { throw .syntax }
            samples = n
            i += 2
        }
        guard let e = ctx.lookup(ctx.args[2]) else { ctx.reply.null(); return }
        ctx.reply.integer(e.estimatedBytes(samples: samples))
    }

    static func run(_ shard: Shard, _ conn: Connection, _ args: [Bytes], _ reply: ReplyWriter) -> Bool {
        let sub = args[1].string.lowercased()
        switch (sub, args.count) {
        case ("usage", 3...):
            return shard.runLocked(usageSpec, args, conn, reply)
        case ("stats", 2):
            stats(shard.server, reply)
        case ("doctor", 2):
            reply.verbatim(doctor(shard.server))
        case ("purge", 2):
            berth_release_free_memory()
            reply.ok()
        case ("malloc-stats", 2):
            reply.verbatim(mallocInfo())
        case ("help", 2):
            reply.simpleLines([
                "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "DOCTOR",
                "    Return memory problems reports.",
                "MALLOC-STATS",
                "    Return internal statistics report from the memory allocator.",
                "PURGE",
                "    Attempt to purge dirty pages for reclamation by the allocator.",
                "STATS",
                "    Return information about the memory usage of the server.",
                "USAGE <key> [SAMPLES <count>]",
                "    Return memory in bytes used by <key> and its value. Nested values are",
                "    sampled up to <count> times (default: 5, 0 means sample all).",
                "HELP",
                "    Prints this help.",
            ])
        case ("usage", _), ("stats", _), ("doctor", _), ("purge", _), ("malloc-stats", _), ("help", _):
            reply.error(CommandError.wrongArity("memory|\(sub)").message)
            return true
        default:
            reply.error(CommandError.unknownSubcommand(args[1], "memory").message)
            return true
        }
        return false
    }

    /// The figures Berth can give honestly, under Redis's names.
    static func stats(_ server: Server, _ reply: ReplyWriter) {
        let used = Int(berth_allocated_bytes()), rss = Int(berth_rss_bytes())
        let peak = max(used, server.peakMemory(used))
        let keys = server.stores.reduce(0) { sum, store in sum + store.databases.reduce(0) { $0 + $1.count } }
        let dataset = max(0, used - server.startupMemory)
        let perKey = keys > 0 ? dataset / keys : 0
        let integers: [(String, Int)] = [
            ("peak.allocated", peak), ("total.allocated", used), ("startup.allocated", server.startupMemory),
            ("replication.backlog", 0), ("clients.slaves", 0), ("aof.buffer", 0),
            ("keys.count", keys), ("keys.bytes-per-key", perKey), ("dataset.bytes", dataset),
            ("allocator.allocated", used), ("allocator.resident", rss), ("fragmentation.bytes", rss - used),
        ]
        let ratios: [(String, Double)] = [
            ("dataset.percentage", used > 0 ? Double(dataset) * 100 / Double(used) : 0),
            ("peak.percentage", peak > 0 ? Double(used) * 100 / Double(peak) : 0),
            ("fragmentation", used > 0 ? Double(rss) / Double(used) : 0),
        ]
        reply.mapHeader(integers.count + ratios.count)
        for (name, n) in integers { reply.bulk(Bytes(name)); reply.integer(n) }
        for (name, d) in ratios { reply.bulk(Bytes(name)); reply.double(d) }
    }

    static func doctor(_ server: Server) -> String {
        let used = Int(berth_allocated_bytes()), rss = Int(berth_rss_bytes())
        let peak = max(used, server.peakMemory(used))
        var report = "Berth memory report: \(used) bytes allocated, \(rss) resident, peak \(peak).\n"
        if used < 5 * 1024 * 1024 {
            report += "The dataset is too small to judge; nothing to report.\n"
        } else {
            if Double(rss) / Double(used) > 1.4 {
                report += "High fragmentation: the process holds \(rss - used) bytes more than it uses; MEMORY PURGE returns free heap pages to the kernel.\n"
            }
            if peak > used * 2 {
                report += "The peak was more than twice today's use: memory freed since is kept by the allocator until purged.\n"
            }
            if report.split(separator: "\n").count == 1 { report += "No memory issue found.\n" }
        }
        return report
    }

    /// glibc's malloc_info report (XML), as text.
    static func mallocInfo() -> String {
        guard let text = berth_allocator_report() else { return "" }
        defer { free(text) }
        return String(cString: text)
    }
}
