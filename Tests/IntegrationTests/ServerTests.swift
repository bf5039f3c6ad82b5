import BerthClient
import Foundation
import RESP
import XCTest

/// End-to-end tests: the real server binary, Berth's own client, real sockets, both
/// event back ends.
final class ServerTests: XCTestCase {
    func testBasicCommandsOnBothBackends() throws {
        for io in ["uring", "epoll"] {
            let server = try ServerProcess(shards: 2, io: io)
            let c = try server.client()
            XCTAssertEqual(try c.call("SET", "k", "v"), .simple("OK"))
            XCTAssertEqual(try c.call("GET", "k"), .bulk("v"))
            XCTAssertEqual(try c.call("GET", "missing"), .null)
            XCTAssertEqual(try c.call("INCR", "n"), .integer(1))
            XCTAssertEqual(try c.call("LPUSH", "l", "a", "b"), .integer(2))
            XCTAssertEqual(try c.call("LRANGE", "l", "0", "-1"), .array([.bulk("b"), .bulk("a")]))
            XCTAssertEqual(try c.call("GET", "l"), .error("WRONGTYPE Operation against a key holding the wrong kind of value"))
            XCTAssertEqual(try c.call("GET"), .error("ERR wrong number of arguments for 'get' command"))
            let info = try c.call("INFO", "server").string ?? ""
            XCTAssertTrue(info.contains("multiplexing_api:\(io == "uring" ? "io_uring" : "epoll")"), info)
            server.stop()
            XCTAssertEqual(server.exitStatus, 0)
        }
    }

    /// Replies come back in request order even when consecutive pipelined commands go to
    /// keys on different shards.
    func testPipelinedRepliesKeepOrderAcrossShards() throws {
        let server = try ServerProcess(shards: 4)
        let c = try server.client()
        var commands: [[Bytes]] = []
        for i in 0..<2000 { commands.append(["SET", Bytes("key:\(i)"), Bytes("\(i)")]) }
        for i in 0..<2000 { commands.append(["GET", Bytes("key:\(i)")]) }
        let replies = try c.pipeline(commands)
        for i in 0..<2000 {
            XCTAssertEqual(replies[i], .simple("OK"))
            XCTAssertEqual(replies[2000 + i], .bulk(Bytes("\(i)")))
        }
        XCTAssertEqual(try c.call("DBSIZE"), .integer(2000))
    }

    /// Writers MSET two keys on different shards to the same value; readers MGET them
    /// and must never see the two differ (no half-applied MSET).
    func testCrossShardMSETIsAtomic() throws {
        let server = try ServerProcess(shards: 4)
        let setup = try server.client()
        // Find two keys owned by different shards: hash tags pick their slots.
        XCTAssertEqual(try setup.call("MSET", "{a}x", "0", "{b}x", "0"), .simple("OK"))
        let port = server.port
        let stop = ManagedAtomicFlag()
        let mismatches = ManagedCounter()
        let reads = ManagedCounter()
        let group = DispatchGroup()
        for w in 0..<2 {
            DispatchQueue.global().async(group: group) {
                guard let c = try? RESPClient(port: port) else { return }
                var i = 0
                while !stop.isSet {
                    i += 1
                    let v = Bytes("\(w)-\(i)")
                    _ = try? c.call("MSET", "{a}x", v, "{b}x", v)
                }
            }
        }
        for _ in 0..<3 {
            DispatchQueue.global().async(group: group) {
                guard let c = try? RESPClient(port: port) else { return }
                for _ in 0..<3000 {
                    guard case .array(let vs)? = try? c.call("MGET", "{a}x", "{b}x"), vs.count == 2 else { mismatches.add(); continue }
                    if vs[0] != vs[1] { mismatches.add() }
                    reads.add()
                }
            }
        }
        // Readers finish first; then stop writers.
        while reads.value < 9000 && mismatches.value == 0 { usleep(10_000) }
        stop.set()
        group.wait()
        XCTAssertEqual(mismatches.value, 0)
        XCTAssertEqual(reads.value, 9000)
    }

    func testProtocolErrorClosesOnlyThatConnection() throws {
        let server = try ServerProcess(shards: 2)
        let good = try server.client()
        let bad = try server.client()
        try bad.sendRaw(Array("*1\r\n$-3\r\n".utf8))
        XCTAssertEqual(try bad.readReply(), .error("ERR Protocol error: invalid bulk length"))
        XCTAssertTrue(bad.isClosedByPeer())
        XCTAssertEqual(try good.call("PING"), .simple("PONG"))
    }

    func testTransactionsAcrossShards() throws {
        let server = try ServerProcess(shards: 4)
        let c = try server.client()
        let other = try server.client()
        XCTAssertEqual(try c.call("MULTI"), .simple("OK"))
        XCTAssertEqual(try c.call("SET", "{a}k", "1"), .simple("QUEUED"))
        XCTAssertEqual(try c.call("INCR", "{b}k"), .simple("QUEUED"))
        XCTAssertEqual(try c.call("EXEC"), .array([.simple("OK"), .integer(1)]))
        // WATCH: a change by another client aborts EXEC.
        XCTAssertEqual(try c.call("WATCH", "{a}k"), .simple("OK"))
        XCTAssertEqual(try other.call("SET", "{a}k", "2"), .simple("OK"))
        XCTAssertEqual(try c.call("MULTI"), .simple("OK"))
        XCTAssertEqual(try c.call("SET", "{b}k", "x"), .simple("QUEUED"))
        XCTAssertEqual(try c.call("EXEC"), .null)
        XCTAssertEqual(try c.call("GET", "{b}k"), .bulk("1"))
        // Queue-time errors abort the whole transaction.
        XCTAssertEqual(try c.call("MULTI"), .simple("OK"))
        XCTAssertEqual(try c.call("NOSUCH"), .error("ERR unknown command 'NOSUCH', with args beginning with: "))
        XCTAssertEqual(try c.call("EXEC"), .error("EXECABORT Transaction discarded because of previous errors."))
    }

    func testClientKillAcrossShards() throws {
        let server = try ServerProcess(shards: 2)
        let victims = try (0..<4).map { _ in try server.client() }
        let ids = try victims.map { c -> Int in
            guard case .integer(let id) = try c.call("CLIENT", "ID") else { throw RESPClient.Failure(description: "no id") }
            return id
        }
        let admin = try server.client()
        for id in ids {
            XCTAssertEqual(try admin.call(["CLIENT", "KILL", "ID", String(id)]), .integer(1))
        }
        for v in victims { XCTAssertTrue(v.isClosedByPeer()) }
        XCTAssertEqual(try admin.call("PING"), .simple("PONG"))
    }

    /// A client blocked on keys of two shards is woken by a push to either, gets the
    /// element exactly once, and a timed-out or unblocked client gets its nil reply.
    func testBlockingPopAcrossShards() throws {
        let server = try ServerProcess(shards: 4)
        let consumer = try server.client()
        let producer = try server.client()
        // "a" and "b" hash to slots owned by different shards of four.
        try consumer.send(["BLPOP", "a", "b", "0"])
        try waitForBlocked(producer, count: 1)
        XCTAssertEqual(try producer.call("RPUSH", "b", "x", "y"), .integer(2))
        XCTAssertEqual(try consumer.readReply(), .array([.bulk("b"), .bulk("x")]))
        XCTAssertEqual(try producer.call("LRANGE", "b", "0", "-1"), .array([.bulk("y")]))
        XCTAssertEqual(try consumer.call("BLPOP", "none", "0.05"), .null)
        guard case .integer(let id) = try consumer.call("CLIENT", "ID") else { return XCTFail("no client id") }
        try consumer.send(["BRPOPLPUSH", "none", "dst", "0"])
        try waitForBlocked(producer, count: 1)
        XCTAssertEqual(try producer.call(["CLIENT", "UNBLOCK", String(id)]), .integer(1))
        XCTAssertEqual(try consumer.readReply(), .null)
        XCTAssertEqual(try consumer.call("PING"), .simple("PONG"))
    }

    private func waitForBlocked(_ c: RESPClient, count: Int) throws {
        for _ in 0..<500 {
            if let info = try c.call("INFO", "clients").string, info.contains("blocked_clients:\(count)\r\n") { return }
            usleep(5_000)
        }
        XCTFail("no client blocked")
    }

    func testResp3Hello() throws {
        let server = try ServerProcess(shards: 1)
        let c = try server.client()
        guard case .map(let fields) = try c.call("HELLO", "3") else { return XCTFail("HELLO 3 must reply a map") }
        XCTAssertTrue(fields.contains { $0.0 == .bulk("proto") && $0.1 == .integer(3) })
        XCTAssertEqual(try c.call("GET", "nothing"), .null)
        _ = try c.call("ZADD", "z", "1.5", "m")
        XCTAssertEqual(try c.call("ZSCORE", "z", "m"), .double(1.5))
        _ = try c.call("HSET", "h", "f", "v")
        XCTAssertEqual(try c.call("HGETALL", "h"), .map([(.bulk("f"), .bulk("v"))]))
    }
}

final class ManagedAtomicFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return flag }
    func set() { lock.lock(); flag = true; lock.unlock() }
}

final class ManagedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
    func add() { lock.lock(); n += 1; lock.unlock() }
}
