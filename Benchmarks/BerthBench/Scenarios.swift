import BerthClient
import Histogram
import RESP
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The measurements berth-bench makes. Each returns raw samples (microseconds) or a
/// throughput; `Runner` repeats them, with and without background load, and reports.
enum Scenarios {
    /// How a producer wakes a consumer: the push and the blocking read it satisfies.
    enum Wake: String, CaseIterable {
        case blpop = "LPUSH->BLPOP"
        case brpop = "LPUSH->BRPOP"
        case bzpopmin = "ZADD->BZPOPMIN"
        case xread = "XADD->XREAD"

        func blockingCommand(_ key: String) -> [String] {
            switch self {
            case .blpop: return ["BLPOP", key, "0"]
            case .brpop: return ["BRPOP", key, "0"]
            case .bzpopmin: return ["BZPOPMIN", key, "0"]
            case .xread: return ["XREAD", "BLOCK", "0", "STREAMS", key, "$"]
            }
        }

        func push(_ key: String, _ i: Int) -> [String] {
            switch self {
            case .blpop, .brpop: return ["LPUSH", key, "v\(i)"]
            case .bzpopmin: return ["ZADD", key, String(i), "m\(i)"]
            case .xread: return ["XADD", key, "MAXLEN", "~", "1000", "*", "i", String(i)]
            }
        }
    }

    /// PING's round trip: the floor every other latency stands on (the loopback, both
    /// kernels' socket paths, this client). A wake's latency minus this is what the
    /// server spends between reading the push and writing the woken client's reply.
    static func pingRoundTrip(_ t: Topology, iterations: Int) throws -> [UInt64] {
        let c = try t.connect()
        var samples: [UInt64] = []
        samples.reserveCapacity(iterations)
        for _ in 0..<iterations {
            let start = nowNanos()
            _ = try c.call("PING")
            samples.append((nowNanos() - start) / 1000)
        }
        return samples
    }

    /// Time from sending the push to the blocked consumer holding its reply.
    /// `crossShard`: the consumer's home shard differs from the producer's and the key's
    /// (on a one-shard server both cases take the same path).
    static func wakeLatency(_ t: Topology, _ kind: Wake, crossShard: Bool, iterations: Int) throws -> [UInt64] {
        let consumer = try t.connect()
        let home = try t.homeShard(of: consumer)
        let producer = try t.connect(homeOn: home, avoid: crossShard)
        let producerHome = try t.homeShard(of: producer)
        let key = t.key("bench:wake:\(kind.rawValue.lowercased())", onShard: crossShard ? producerHome : home)
        _ = try producer.call("DEL", Bytes(key))
        var samples: [UInt64] = []
        samples.reserveCapacity(iterations)
        let consumerID = try t.clientID(consumer)
        for i in 0..<iterations {
            try consumer.send(kind.blockingCommand(key))
            try t.waitUntilBlocked(consumerID, asking: producer)
            let start = nowNanos()
            try producer.send(kind.push(key, i))
            let reply = try consumer.readReply()
            let end = nowNanos()
            _ = try producer.readReply()
            if case .error(let e) = reply { throw RESPClient.Failure(description: e) }
            samples.append((end - start) / 1000)
        }
        return samples
    }

    /// Time from a module thread's UnblockClient to the client holding the reply: the
    /// example module's `blockdemo.stamp` replies with the CLOCK_MONOTONIC time at which
    /// its thread called UnblockClient (same machine, same clock).
    static func moduleCompletion(_ t: Topology, iterations: Int) throws -> [UInt64] {
        let client = try t.connect()
        var samples: [UInt64] = []
        samples.reserveCapacity(iterations)
        for _ in 0..<iterations {
            guard case .integer(let stamp) = try client.call("blockdemo.stamp") else {
                throw RESPClient.Failure(description: "blockdemo.stamp did not answer an integer")
            }
            let end = nowNanos()
            samples.append((end - UInt64(stamp)) / 1000)
        }
        return samples
    }

    /// Whether the server has the example module loaded (MODULE LIST names blockdemo).
    static func hasBlockdemo(_ t: Topology) -> Bool {
        guard let c = try? t.connect(), let list = try? c.call("MODULE", "LIST") else { return false }
        return "\(list)".contains("blockdemo")
    }

    /// Time from sending CLIENT UNBLOCK (TIMEOUT or ERROR) to the blocked client's reply.
    static func unblockLatency(_ t: Topology, error: Bool, iterations: Int) throws -> [UInt64] {
        let blocked = try t.connect()
        let id = try t.clientID(blocked)
        let control = try t.connect(homeOn: try t.homeShard(of: blocked), avoid: true)
        var samples: [UInt64] = []
        for _ in 0..<iterations {
            try blocked.send(["BLPOP", "bench:unblock:empty", "0"])
            try t.waitUntilBlocked(id, asking: control)
            let start = nowNanos()
            try control.send(["CLIENT", "UNBLOCK", String(id), error ? "ERROR" : "TIMEOUT"])
            _ = try blocked.readReply()
            let end = nowNanos()
            guard case .integer(1) = try control.readReply() else {
                throw RESPClient.Failure(description: "CLIENT UNBLOCK did not find the blocked client")
            }
            samples.append((end - start) / 1000)
        }
        return samples
    }

    /// `clients` connections each block on their own empty key with `timeoutMs`; each
    /// sample is how late its nil reply arrives after the deadline.
    static func timeoutLateness(_ t: Topology, clients: Int, timeoutMs: Int) throws -> [UInt64] {
        let pool = try SocketPool(host: t.host, port: t.port, count: clients)
        defer { pool.closeAll() }
        let seconds = String(Double(timeoutMs) / 1000)
        var sentAt = [UInt64](repeating: 0, count: clients)
        for i in 0..<clients {
            sentAt[i] = nowNanos()
            try pool.send(i, ["BLPOP", "bench:timeout:\(i)", seconds])
        }
        let arrivals = try pool.awaitReplies(expect: "*-1\r\n", deadlineSeconds: Double(timeoutMs) / 1000 + 60)
        return (0..<clients).map { i in
            let due = sentAt[i] + UInt64(timeoutMs) * 1_000_000
            return arrivals[i] > due ? (arrivals[i] - due) / 1000 : 0
        }
    }

    /// Resident memory the server spends per connection (INFO memory's used_memory_rss):
    /// `clients` connections opened and left idle, then each blocked in BLPOP on a key of
    /// its own. Bytes per client, idle and blocked, both against the server before.
    static func memoryPerClient(_ t: Topology, clients: Int) throws -> (idle: Double, blocked: Double) {
        let control = try t.connect()
        func rss() throws -> Double {
            let info = try control.call("INFO", "memory").string ?? ""
            let line = info.split(whereSeparator: { $0 == "\r\n" || $0 == "\n" }).first { $0.hasPrefix("used_memory_rss:") }
            guard let line, let bytes = Double(line.dropFirst(16)) else { throw RESPClient.Failure(description: "no used_memory_rss") }
            return bytes
        }
        func blocked() throws -> Int {
            let info = try control.call("INFO", "clients").string ?? ""
            let line = info.split(whereSeparator: { $0 == "\r\n" || $0 == "\n" }).first { $0.hasPrefix("blocked_clients:") }
            return line.flatMap { Int($0.dropFirst(16)) } ?? 0
        }
        usleep(300_000)
        let before = try rss()
        let pool = try SocketPool(host: t.host, port: t.port, count: clients)
        defer { pool.closeAll() }
        usleep(500_000)
        let idle = try rss()
        for i in 0..<clients { try pool.send(i, ["BLPOP", "bench:parked:\(i)", "0"]) }
        for _ in 0..<600 where try blocked() < clients { usleep(50_000) }
        usleep(500_000)
        let parked = try rss()
        return ((idle - before) / Double(clients), (parked - before) / Double(clients))
    }

    /// Round trip of a script that increments its key: EVALSHA, or FCALL of the same code
    /// loaded as a function library (the server's atomic-section cost for scripts).
    static func scriptRoundTrip(_ t: Topology, function: Bool, iterations: Int) throws -> [UInt64] {
        let c = try t.connect()
        let body = "return redis.call('incr', KEYS[1])"
        let sha: String
        if function {
            _ = try c.call(["FUNCTION", "LOAD", "REPLACE",
                            "#!lua name=berthbench\nredis.register_function('bench_incr', function(keys) return redis.call('incr', keys[1]) end)"])
            sha = ""
        } else {
            guard case .bulk(let s) = try c.call(["SCRIPT", "LOAD", body]) else {
                throw RESPClient.Failure(description: "SCRIPT LOAD failed")
            }
            sha = s.string
        }
        let command = function ? ["FCALL", "bench_incr", "1", "bench:script"] : ["EVALSHA", sha, "1", "bench:script"]
        var samples: [UInt64] = []
        samples.reserveCapacity(iterations)
        for _ in 0..<iterations {
            let start = nowNanos()
            guard case .integer = try c.call(command) else { throw RESPClient.Failure(description: "\(command[0]) failed") }
            samples.append((nowNanos() - start) / 1000)
        }
        return samples
    }

    /// The JavaScript calls measured, each incrementing one key: a plain INCR for scale, a
    /// sync function (TFCALL), a coroutine with one `client.block` section (TFCALLASYNC),
    /// and a coroutine with no section at all (the hop to the library's thread and back).
    enum JavaScriptCall: String, CaseIterable {
        case plainIncr = "INCR (baseline)"
        case sync = "TFCALL sync"
        case block = "TFCALLASYNC block"
        case empty = "TFCALLASYNC no section"

        var command: [String] {
            switch self {
            case .plainIncr: return ["INCR", "bench:js"]
            case .sync: return ["TFCALL", "berthbench.incr", "1", "bench:js"]
            case .block: return ["TFCALLASYNC", "berthbench.incr_block", "1", "bench:js"]
            case .empty: return ["TFCALLASYNC", "berthbench.nothing", "0"]
            }
        }
    }

    /// Loads the benchmark's JavaScript library; false where the server has no TFUNCTION.
    static func loadJavaScriptBench(_ t: Topology) -> Bool {
        guard let c = try? t.connect() else { return false }
        let code = """
            #!js api_version=1.0 name=berthbench
            redis.registerFunction('incr', (c, k) => c.call('incr', k));
            redis.registerAsyncFunction('incr_block', async (c, k) => c.block((s) => s.call('incr', k)));
            redis.registerAsyncFunction('nothing', async () => 1n);
            """
        guard case .simple = try? c.call(["TFUNCTION", "LOAD", "REPLACE", code]) else { return false }
        return true
    }

    static func javaScriptRoundTrip(_ t: Topology, _ kind: JavaScriptCall, iterations: Int) throws -> [UInt64] {
        let c = try t.connect()
        var samples: [UInt64] = []
        samples.reserveCapacity(iterations)
        for _ in 0..<iterations {
            let start = nowNanos()
            guard case .integer = try c.call(kind.command) else { throw RESPClient.Failure(description: "\(kind.rawValue) failed") }
            samples.append((nowNanos() - start) / 1000)
        }
        return samples
    }

    /// Time from PUBLISH to a subscriber (on another shard where there are several)
    /// holding the message.
    static func publishLatency(_ t: Topology, iterations: Int) throws -> [UInt64] {
        let subscriber = try t.connect()
        let publisher = try t.connect(homeOn: try t.homeShard(of: subscriber), avoid: true)
        try subscriber.send(["SUBSCRIBE", "bench:pubsub"])
        _ = try subscriber.readReply()
        var samples: [UInt64] = []
        for i in 0..<iterations {
            let start = nowNanos()
            try publisher.send(["PUBLISH", "bench:pubsub", String(i)])
            _ = try subscriber.readReply()
            let end = nowNanos()
            guard case .integer(1) = try publisher.readReply() else { throw RESPClient.Failure(description: "PUBLISH reached nobody") }
            samples.append((end - start) / 1000)
        }
        return samples
    }

    /// One publisher, `subscribers` subscribers on every shard: messages delivered per
    /// second until each subscriber has all `messages`.
    static func fanOut(_ t: Topology, subscribers: Int, messages: Int) throws -> Double {
        let subs = try (0..<subscribers).map { _ in try t.connect() }
        for s in subs {
            try s.send(["SUBSCRIBE", "bench:fanout"])
            _ = try s.readReply()
        }
        let publisher = try t.connect()
        let failures = Atomic<Int>(0)
        let start = nowNanos()
        let readers = subs.map { s in
            Worker {
                for _ in 0..<messages {
                    guard (try? s.readReply()) != nil else { failures.add(1, ordering: .relaxed); return }
                }
            }
        }
        var batch: [[Bytes]] = []
        for i in 0..<messages {
            batch.append(["PUBLISH", "bench:fanout", Bytes("m\(i)")])
            if batch.count == 32 || i == messages - 1 {
                _ = try publisher.pipeline(batch)
                batch.removeAll(keepingCapacity: true)
            }
        }
        for r in readers { r.join() }
        if failures.load(ordering: .relaxed) > 0 { throw RESPClient.Failure(description: "a subscriber failed") }
        return Double(subscribers * messages) / (Double(nowNanos() - start) / 1e9)
    }

    struct Handoff {
        var messagesPerSecond: Double
        var lost: Int
        var duplicated: Int
    }

    /// P producers LPUSH unique messages onto Q lists; C consumers BRPOP from all of them.
    /// Every message must arrive exactly once.
    static func queueHandoff(_ t: Topology, producers: Int, consumers: Int, queues: Int, messages: Int) throws -> Handoff {
        let queueKeys = (0..<queues).map { t.key("bench:queue:\($0)", onShard: $0 % t.shards) }
        let setup = try t.connect()
        _ = try setup.call(["DEL"] + queueKeys)
        let perProducer = messages / producers
        let total = perProducer * producers
        let seen = SeenSet(count: total)
        let received = Atomic<Int>(0)
        let failures = Atomic<Int>(0)
        let consumerClients = try (0..<consumers).map { _ in try t.connect() }
        let producerClients = try (0..<producers).map { _ in try t.connect() }
        let start = nowNanos()
        let lastArrival = Atomic<UInt64>(start)
        var workers: [Worker] = []
        for c in consumerClients {
            workers.append(Worker {
                let command = [Bytes("BRPOP")] + queueKeys.map { Bytes($0) } + [Bytes("0.2")]
                // Until everything arrived, or nothing did for 10 s (then `tally` reports the loss).
                while received.load(ordering: .relaxed) < total
                        && nowNanos() < lastArrival.load(ordering: .relaxed) + 10_000_000_000 {
                    guard let reply = try? c.pipeline([command])[0] else { failures.add(1, ordering: .relaxed); return }
                    guard case .array(let kv) = reply, kv.count == 2, let body = kv[1].string,
                          let n = Int(body.dropFirst()) else { continue }
                    seen.mark(n)
                    received.add(1, ordering: .relaxed)
                    lastArrival.store(nowNanos(), ordering: .relaxed)
                }
            })
        }
        for (p, c) in producerClients.enumerated() {
            workers.append(Worker {
                for s in 0..<perProducer {
                    let n = p * perProducer + s
                    guard (try? c.call(["LPUSH", queueKeys[n % queues], "m\(n)"])) != nil else {
                        failures.add(1, ordering: .relaxed); return
                    }
                }
            })
        }
        for w in workers { w.join() }
        if failures.load(ordering: .relaxed) > 0 { throw RESPClient.Failure(description: "a connection failed during the hand-off") }
        let seconds = Double(lastArrival.load(ordering: .relaxed) - start) / 1e9
        let (lost, duplicated) = seen.tally()
        return Handoff(messagesPerSecond: Double(total) / max(seconds, 1e-9), lost: lost, duplicated: duplicated)
    }
}

/// Which messages of a hand-off arrived, and how often.
final class SeenSet: @unchecked Sendable {
    private var counts: [UInt8]
    private let lock = NSLockLike()
    init(count: Int) { counts = Array(repeating: 0, count: count) }

    func mark(_ n: Int) {
        lock.locked { if n >= 0 && n < counts.count { counts[n] &+= 1 } }
    }

    func tally() -> (lost: Int, duplicated: Int) {
        lock.locked { (counts.filter { $0 == 0 }.count, counts.filter { $0 > 1 }.count) }
    }
}

/// A pthread mutex, so the benchmark needs no Foundation.
final class NSLockLike: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return body()
    }
}
