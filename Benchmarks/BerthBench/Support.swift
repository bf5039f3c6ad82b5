import BerthClient
import Histogram
import Keyspace
import RESP
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Monotonic nanoseconds: every latency here is the difference of two readings taken in
/// this process, so client and server clocks never mix.
@inline(__always)
func nowNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Latencies in microseconds.
func makeHistogram() -> Histogram<UInt64> {
    Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
}

/// A thread that can be joined; the benchmark's workers are plain threads, not tasks, so
/// that a blocking socket read never starves another measurement.
final class Worker: @unchecked Sendable {
    private var thread = pthread_t()
    private let body: () -> Void

    init(_ body: @escaping () -> Void) {
        self.body = body
        let box = Unmanaged.passRetained(self).toOpaque()
        pthread_create(&thread, nil, { raw in
            let w = Unmanaged<Worker>.fromOpaque(raw!).takeRetainedValue()
            w.body()
            return nil
        }, box)
    }

    func join() { pthread_join(thread, nil) }
}

/// Where the server under test puts keys and connections, when it says (Berth's CLIENT
/// INFO has `shard=`, and INFO server has `shards:`); other servers are one shard.
struct Topology {
    let host: String
    let port: Int
    let shards: Int

    static func discover(host: String, port: Int) throws -> Topology {
        let c = try RESPClient(host: host, port: port)
        let info = try c.call("INFO", "server").string ?? ""
        var shards = 1
        for line in info.split(whereSeparator: { $0 == "\r\n" || $0 == "\n" }) where line.hasPrefix("shards:") {
            shards = Int(line.dropFirst(7)) ?? 1
        }
        return Topology(host: host, port: port, shards: shards)
    }

    func connect() throws -> RESPClient { try RESPClient(host: host, port: port) }

    /// The connection's home shard (0 on servers that do not report one).
    func homeShard(of c: RESPClient) throws -> Int {
        let line = try c.call("CLIENT", "INFO").string ?? ""
        guard let field = line.split(separator: " ").first(where: { $0.hasPrefix("shard=") }) else { return 0 }
        return Int(field.dropFirst(6).prefix { $0.isNumber }) ?? 0
    }

    /// Connects until it gets a connection homed on (or, `avoid`, not on) `shard`.
    func connect(homeOn shard: Int, avoid: Bool = false) throws -> RESPClient {
        var spare: [RESPClient] = []
        for _ in 0..<(4 * shards + 4) {
            let c = try connect()
            let home = try homeShard(of: c)
            if (home == shard) != avoid || shards == 1 { return c }
            spare.append(c)
        }
        return spare.removeLast()
    }

    func shard(of key: String) -> Int { HashSlot.of(Bytes(key)) * shards / HashSlot.count }

    /// A fresh key name owned by `shard`.
    func key(_ prefix: String, onShard shard: Int) -> String {
        var i = 0
        while true {
            let k = "\(prefix):\(i)"
            if shards == 1 || self.shard(of: k) == shard { return k }
            i += 1
        }
    }

    /// Asks through `other` until client `id` shows flag `b`: a measurement starts only
    /// once its client really waits in the server, however loaded the machine is.
    func waitUntilBlocked(_ id: Int, asking other: RESPClient) throws {
        for _ in 0..<100_000 {
            let line = try other.call("CLIENT", "LIST", "ID", Bytes(String(id))).string ?? ""
            if let flags = line.split(separator: " ").first(where: { $0.hasPrefix("flags=") }), flags.contains("b") { return }
        }
        throw RESPClient.Failure(description: "client \(id) never blocked")
    }

    /// Runs `body` with Berth's client migration off, so that a client placed on another
    /// shard than its key stays there for every iteration instead of moving to the key's
    /// shard after 64 commands (other servers have no such option: `body` just runs).
    func withClientsStaying<T>(_ body: () throws -> T) throws -> T {
        guard shards > 1 else { return try body() }
        let c = try connect()
        var old = "64"
        if case .array(let pair) = try c.call("CONFIG", "GET", "client-migration-streak"), pair.count == 2,
           let value = pair[1].string {
            old = value
        }
        _ = try c.call("CONFIG", "SET", "client-migration-streak", "0")
        defer { _ = try? c.call("CONFIG", "SET", "client-migration-streak", Bytes(old)) }
        return try body()
    }

    func clientID(_ c: RESPClient) throws -> Int {
        guard case .integer(let id) = try c.call("CLIENT", "ID") else { throw RESPClient.Failure(description: "CLIENT ID failed") }
        return id
    }
}

/// N connections running pipelined SET/GET against the server until stopped: the
/// "under load" condition of every scenario.
final class BackgroundLoad: @unchecked Sendable {
    private let stopFlag = Atomic<Bool>(false)
    private let operations = Atomic<Int>(0)
    private var workers: [Worker] = []

    init(topology: Topology, connections: Int, pipeline: Int = 16) throws {
        let clients = try (0..<connections).map { _ in try topology.connect() }
        for (n, c) in clients.enumerated() {
            workers.append(Worker { [self] in
                var batch: [[Bytes]] = []
                var i = 0
                while !stopFlag.load(ordering: .relaxed) {
                    batch.removeAll(keepingCapacity: true)
                    for _ in 0..<pipeline {
                        i &+= 1
                        let key = Bytes("load:\(n):\(i % 1000)")
                        batch.append(i % 2 == 0 ? ["SET", key, "xxxxxxxxxxxxxxxx"] : ["GET", key])
                    }
                    guard (try? c.pipeline(batch)) != nil else { return }
                    operations.add(pipeline, ordering: .relaxed)
                }
            })
        }
    }

    var completed: Int { operations.load(ordering: .relaxed) }

    func stop() {
        stopFlag.store(true, ordering: .relaxed)
        for w in workers { w.join() }
    }
}
