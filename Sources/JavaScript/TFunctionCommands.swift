import Engine
import Commands
import Keyspace
import RESP
import Synchronization

/// The loaded JavaScript libraries, by name.
///
/// Invariants: a name maps to at most one open library; a library leaves the map before
/// it is closed, so a run can only start on an open library (or find it closed and fail).
final class JSLibraries: Sendable {
    private let libraries = Mutex<[String: JSLibrary]>([:])
    private let nextRun = Atomic<UInt64>(0)

    func library(_ name: String) -> JSLibrary? { libraries.withLock { $0[name] } }

    var all: [JSLibrary] { libraries.withLock { $0.values.sorted { $0.name < $1.name } } }

    /// Installs `library`, returning the one it replaces.
    func install(_ library: JSLibrary) -> JSLibrary? {
        libraries.withLock { l in
            defer { l[library.name] = library }
            return l[library.name]
        }
    }

    func remove(_ name: String) -> JSLibrary? { libraries.withLock { $0.removeValue(forKey: name) } }

    /// At shutdown, after the shards stopped: frees every engine on its own thread (code
    /// still running is interrupted), then shuts SpiderMonkey down. False when an engine
    /// did not stop within two seconds: then SpiderMonkey cannot be shut down safely.
    func closeAll() -> Bool {
        let open = libraries.withLock { l in
            defer { l.removeAll() }
            return Array(l.values)
        }
        var stopped = true
        for library in open {
            let done = Semaphore()
            library.interrupt(stop: true, memoryLimit: 0)
            library.close(reason: "ERR the server is shutting down", then: done)
            if !done.wait(seconds: 2) { stopped = false }
        }
        if stopped { JSRuntime.shutdown() }
        return stopped
    }

    func newRunID() -> UInt64 { nextRun.add(1, ordering: .relaxed).newValue }
}

/// TFUNCTION LOAD/DELETE/LIST/HELP, TFCALL and TFCALLASYNC (see JSRuntime.swift).
enum TFunctionCommands {
    static let table: [(CommandSpec, EngineHandler)] = [
        (EngineCommands.spec("tfunction", -2, [.admin, .noMulti, .stale], subcommands: ["load", "delete", "list", "help"]), tfunction),
        // allShards: EXEC takes every shard lock for a transaction that calls a function.
        (EngineCommands.spec("tfcall", -3, [.allShards]), { shard, conn, args, reply in
            call(shard, conn, args, reply, async: false)
        }),
        (EngineCommands.spec("tfcallasync", -3, [.allShards]), { shard, conn, args, reply in
            call(shard, conn, args, reply, async: true)
        }),
    ]

    /// A library loaded or deleted joins the effect stream as the command itself: libraries
    /// belong to the data set, as Lua's do (FUNCTION LOAD).
    private static func propagate(_ server: Server, _ args: [Bytes]) {
        server.effects.append(Effect(db: -1, args))
    }

    static func tfunction(_ shard: Shard, _ conn: Connection, _ args: [Bytes], _ reply: ReplyWriter) -> Bool {
        let server = shard.server
        switch args[1].string.lowercased() {
        case "load":
            let failed = load(server, Array(args.dropFirst(2)), reply)
            if !failed { propagate(server, args) }
            return failed
        case "delete" where args.count == 3:
            guard let library = server.javascript.remove(args[2].string) else {
                reply.error("ERR library does not exist")
                return true
            }
            library.close(reason: "ERR the library was deleted while the function ran")
            propagate(server, args)
            reply.ok()
        case "list":
            return list(server, Array(args.dropFirst(2)), reply)
        case "help" where args.count == 2:
            let lines = ["TFUNCTION <subcommand> [<arg> ...]. Subcommands are:",
                         "LOAD [REPLACE] [CONFIG <json>] <library code>", "DELETE <library name>",
                         "LIST [WITHCODE] [VERBOSE] [LIBRARY <library name>]", "HELP"]
            reply.arrayHeader(lines.count)
            for l in lines { reply.simple(l) }
        default:
            reply.error("ERR unknown subcommand or wrong number of arguments for '\(args[1].string)'. Try TFUNCTION HELP.")
            return true
        }
        return false
    }

    /// `#!js api_version=1.0 name=<lib>`: the library's name, and the code with that line
    /// turned into a comment (line numbers stay).
    static func prologue(_ code: Bytes) -> Result<(name: String, body: Bytes), JSError> {
        var raw = code.array
        guard raw.count >= 2, raw[0] == 35, raw[1] == 33 else {
            return .failure(JSError("ERR the library code must start with '#!js api_version=1.0 name=<library name>'"))
        }
        let end = raw.firstIndex(of: 10) ?? raw.count
        let words = String(decoding: raw[2..<end], as: UTF8.self).split(separator: " ").map(String.init)
        guard let engine = words.first, engine == "js" else {
            return .failure(JSError("ERR unknown engine '\(words.first ?? "")': only 'js' is supported"))
        }
        var name: String?, version: String?
        for word in words.dropFirst() {
            let parts = word.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { return .failure(JSError("ERR bad library metadata '\(word)'")) }
            switch parts[0] {
            case "name": name = parts[1]
            case "api_version": version = parts[1]
            default: return .failure(JSError("ERR unknown library metadata '\(parts[0])'"))
            }
        }
        guard let version else { return .failure(JSError("ERR the library metadata has no api_version")) }
        guard version == "1.0" else { return .failure(JSError("ERR unsupported api version '\(version)': Berth supports 1.0")) }
        guard let name, !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
            return .failure(JSError("ERR the library metadata needs name=<library name> (letters, digits and underscores)"))
        }
        raw[0] = 47  // "//" comments the line out
        raw[1] = 47
        return .success((name, Bytes(raw)))
    }

    static func load(_ server: Server, _ args: [Bytes], _ reply: ReplyWriter) -> Bool {
        var replace = false
        var config: String?
        var i = 0
        while i < args.count - 1 {
            if args[i].equalsIgnoringCase("replace") {
                replace = true
                i += 1
            } else if args[i].equalsIgnoringCase("config") && i + 2 < args.count {
                config = args[i + 1].string
                i += 2
            } else {
                break
            }
        }
        guard i == args.count - 1 else {
            reply.error("ERR wrong arguments: TFUNCTION LOAD [REPLACE] [CONFIG <json>] <library code>")
            return true
        }
        let code = args[i]
        let name: String, body: Bytes
        switch prologue(code) {
        case .success(let p): (name, body) = p
        case .failure(let e): reply.error(e.message); return true
        }
        if !replace && server.javascript.library(name) != nil {
            reply.error("ERR Library \(name) already exists")
            return true
        }
        switch JSLibrary.load(name: name, code: code, body: body, config: config, server: server) {
        case .failure(let e):
            reply.error(e.message)
            return true
        case .success(let library):
            if let old = server.javascript.install(library) {
                old.close(reason: "ERR the library was replaced while the function ran")
            }
            server.jsWatchdog.start(server)
            reply.ok()
            return false
        }
    }

    private static func list(_ server: Server, _ args: [Bytes], _ reply: ReplyWriter) -> Bool {
        var withCode = false, verbose = false
        var only: String?
        var i = 0
        while i < args.count {
            if args[i].equalsIgnoringCase("withcode") { withCode = true }
            else if args[i].equalsIgnoringCase("verbose") { verbose = true }
            else if args[i].equalsIgnoringCase("library") && i + 1 < args.count { only = args[i + 1].string; i += 1 }
            else { reply.error(CommandError.syntax.message); return true }
            i += 1
        }
        let libraries = server.javascript.all.filter { only == nil || $0.name == only }
        reply.arrayHeader(libraries.count)
        for library in libraries {
            reply.mapHeader(withCode ? 7 : 6)
            reply.bulk("library_name"); reply.bulk(library.name)
            reply.bulk("engine"); reply.bulk("js")
            reply.bulk("api_version"); reply.bulk("1.0")
            reply.bulk("configuration")
            if let config = library.config { reply.bulk(config) } else { reply.null() }
            reply.bulk("pending_jobs"); reply.integer(library.pendingRuns.load(ordering: .relaxed))
            reply.bulk("functions")
            reply.arrayHeader(library.functions.count)
            for f in library.functions {
                if verbose {
                    reply.mapHeader(4)
                    reply.bulk("name"); reply.bulk(f.name)
                    reply.bulk("description"); reply.bulk(f.description)
                    reply.bulk("is_async"); reply.integer(f.isAsync ? 1 : 0)
                    reply.bulk("flags"); reply.arrayHeader(f.flags.count)
                    for flag in f.flags { reply.bulk(flag) }
                } else {
                    reply.bulk(f.name)
                }
            }
            if withCode { reply.bulk("code"); reply.bulk(library.code) }
        }
        return false
    }

    /// TFCALL / TFCALLASYNC <library>.<function> <numkeys> [key ...] [arg ...]: the
    /// client waits as a blocked client until the run's reply comes back.
    static func call(_ shard: Shard, _ conn: Connection, _ args: [Bytes], _ reply: ReplyWriter, async: Bool) -> Bool {
        let server = shard.server
        let full = args[1].string
        guard let dot = full.firstIndex(of: "."), dot != full.startIndex, full.index(after: dot) != full.endIndex else {
            reply.error("ERR the function name must be <library name>.<function name>")
            return true
        }
        let libraryName = String(full[..<dot]), functionName = String(full[full.index(after: dot)...])
        guard let numkeys = Numbers.int(args[2]) else { reply.error(CommandError.notInteger.message); return true }
        guard numkeys >= 0 else { reply.error("ERR Number of keys can't be negative"); return true }
        guard numkeys <= args.count - 3 else { reply.error("ERR Number of keys can't be greater than number of args"); return true }
        guard let library = server.javascript.library(libraryName) else {
            reply.error("ERR Unknown library \(libraryName)")
            return true
        }
        guard let function = library.function(functionName) else {
            reply.error("ERR Unknown function \(functionName) in library \(libraryName)")
            return true
        }
        if function.isAsync && !async {
            reply.error("ERR function \(functionName) is async: call it with TFCALLASYNC")
            return true
        }
        if shard.context.inTransaction {
            // Inside EXEC nothing may wait: the function runs now, on the transaction's locks.
            let run = JSRun(id: server.javascript.newRunID(), function: functionName, home: shard.index, db: conn.db,
                            protocolVersion: conn.protocolVersion, noWrites: function.noWrites,
                            allowOOM: function.allowOOM, blockAllowed: false,
                            lent: LentSection(context: shard.context))
            let bytes = library.runLent(run, argv: Array(args.dropFirst(3)))
            bytes.withUnsafeBytes { reply.buffer.append($0) }
            return bytes.first == UInt8(ascii: "-")
        }
        let run = JSRun(id: server.javascript.newRunID(), function: functionName, home: shard.index, db: conn.db,
                        protocolVersion: conn.protocolVersion, noWrites: function.noWrites,
                        allowOOM: function.allowOOM, blockAllowed: async)
        let client = BlockedClient(connectionID: conn.id, home: shard.index, db: conn.db, keys: [], operation: .external(run),
                                   protocolVersion: conn.protocolVersion, deadline: 0,
                                   discardsReply: conn.repliesOff || conn.skipReplies > 0)
        run.client = client
        guard library.start(run, argv: Array(args.dropFirst(3))) else {
            reply.error("ERR Unknown library \(libraryName)")
            return true
        }
        conn.blocked = client
        conn.suspended = true
        server.blockedClients.add(1, ordering: .relaxed)
        return false
    }
}
