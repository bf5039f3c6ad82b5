import Engine
import Commands
import Keyspace
import RESP

/// FUNCTION LOAD/DELETE/LIST/FLUSH/DUMP/RESTORE/STATS/KILL and FCALL/FCALL_RO.
enum ScriptFunctions {
    static let specs: [CommandSpec] = ["fcall", "fcall_ro"].map { name in
        var flags: CommandFlags = [.script, .engine, .allShards, .stale]
        if name == "fcall_ro" { flags.insert(.readonly) }
        return CommandSpec(name, arity: -3, flags: flags, keys: ScriptCommands.keySpec)
    }

    /// The library name from `#!lua name=<lib>`, and the code with that line commented out
    /// (line numbers stay as Redis reports them). The line is split as Redis splits it
    /// (quotes allowed), and its first word is the engine after the `#!`.
    static func metadata(_ code: Bytes) throws(CommandError) -> (name: String, source: Bytes) {
        var raw = code.array
        guard raw.starts(with: [35, 33]) else { throw CommandError("ERR Missing library metadata") }
        guard let end = raw.firstIndex(of: 10) else { throw CommandError("ERR Invalid library metadata") }
        let parts = raw[0..<end].withUnsafeBytes { InlineSplitter.split($0) }
        guard let parts, let first = parts.first else { throw CommandError("ERR Invalid library metadata") }
        var name: String?
        for part in parts.dropFirst() {
            let word = part.string
            guard word.hasPrefix("name=") else { throw CommandError("ERR Invalid metadata value given: \(word)") }
            guard name == nil else { throw CommandError("ERR Invalid metadata value, name argument was given multiple times") }
            name = String(word.dropFirst(5))
        }
        guard let name else { throw CommandError("ERR Library name was not given") }
        let engine = String(first.string.dropFirst(2))
        guard engine.lowercased() == "lua" else { throw CommandError("ERR Engine '\(engine)' not found") }
        guard !name.isEmpty, name.utf8.allSatisfy({ c in
            (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 95
        }) else {
            throw CommandError("ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long")
        }
        raw[0] = 45
        raw[1] = 45
        return (name, Bytes(raw))
    }

    /// Checks `code` in this shard's interpreter and adds it; the library name or an error.
    static func load(_ shard: Shard, _ code: Bytes, replace: Bool) -> Result<String, ScriptError> {
        let name: String, source: Bytes
        do { (name, source) = try metadata(code) } catch { return .failure(ScriptError(error.message)) }
        if !replace, shard.server.functions.library(name) != nil {
            return .failure(ScriptError("ERR Library '\(name)' already exists"))
        }
        switch shard.scriptHost.check(source, install: false) {
        case .failure(let e): return .failure(e)
        case .success(let functions):
            if let error = shard.server.functions.add(FunctionLibrary(name: name, code: code, functions: functions), replace: replace) {
                return .failure(ScriptError(error))
            }
            return .success(name)
        }
    }

    /// Redis's arity of each FUNCTION subcommand (counting FUNCTION and the subcommand):
    /// outside it the reply names `function|<sub>`; within it, a bad argument list gets the
    /// container's "unknown subcommand or wrong number of arguments".
    static let subcommandArity: [String: Int] = ["delete": 3, "dump": 2, "flush": -2, "help": 2, "kill": 2,
                                                 "list": -2, "load": -3, "restore": -3, "stats": 2]

    /// Libraries are part of the data set: a change to them joins the effect stream as the
    /// command itself, as Redis propagates FUNCTION LOAD, DELETE, FLUSH and RESTORE.
    private static func propagate(_ shard: Shard, _ args: [Bytes]) {
        shard.server.effects.append(Effect(db: -1, args))
    }

    static func function(_ shard: Shard, _ conn: Connection, _ args: [Bytes], _ reply: ReplyWriter) -> Bool {
        let libraries = shard.server.functions
        func fail(_ e: ScriptError) -> Bool {
            shard.server.errorStats.countReply(e.reply)
            e.reply.withUnsafeBytes { reply.buffer.append($0) }
            return true
        }
        let sub = args[1].string.lowercased()
        if let arity = subcommandArity[sub], !(arity >= 0 ? args.count == arity : args.count >= -arity) {
            reply.error(CommandError.wrongArity("function|\(sub)").message)
            return true
        }
        switch sub {
        case "load" where args.count >= 3:
            var replace = false
            for a in args[2..<(args.count - 1)] {
                guard a.equalsIgnoringCase("replace") else { reply.error("ERR Unknown option given: \(a.string)"); return true }
                replace = true
            }
            switch load(shard, args[args.count - 1], replace: replace) {
            case .success(let name):
                propagate(shard, args)
                reply.bulk(name)
            case .failure(let e): return fail(e)
            }
        case "delete" where args.count == 3:
            guard libraries.delete(args[2].string) else { reply.error("ERR Library not found"); return true }
            propagate(shard, args)
            reply.ok()
        case "flush" where args.count <= 3:
            if args.count == 3 && !args[2].equalsIgnoringCase("async") && !args[2].equalsIgnoringCase("sync") {
                reply.error("ERR FUNCTION FLUSH only supports SYNC|ASYNC option")
                return true
            }
            libraries.flush()
            propagate(shard, args)
            reply.ok()
        case "list":
            var withCode = false, pattern: Bytes?
            var i = 2
            while i < args.count {
                if args[i].equalsIgnoringCase("withcode") && !withCode {
                    withCode = true
                } else if args[i].equalsIgnoringCase("libraryname") && pattern == nil {
                    guard i + 1 < args.count else { reply.error("ERR library name argument was not given"); return true }
                    i += 1
                    pattern = args[i]
                } else {
                    reply.error("ERR Unknown argument \(args[i].string)")
                    return true
                }
                i += 1
            }
            let libs = libraries.all.filter { pattern == nil || Glob.matches(pattern!, Bytes($0.name)) }
            reply.arrayHeader(libs.count)
            for lib in libs {
                reply.mapHeader(withCode ? 4 : 3)
                reply.bulk("library_name"); reply.bulk(lib.name)
                reply.bulk("engine"); reply.bulk("LUA")
                reply.bulk("functions"); reply.arrayHeader(lib.functions.count)
                for f in lib.functions {
                    reply.mapHeader(3)
                    reply.bulk("name"); reply.bulk(f.name)
                    reply.bulk("description")
                    if f.description.isEmpty { reply.null() } else { reply.bulk(f.description) }
                    reply.bulk("flags"); reply.setHeader(f.flagList.count)
                    for flag in f.flagList { reply.bulk(flag) }
                }
                if withCode { reply.bulk("library_code"); reply.bulk(lib.code) }
            }
        case "dump" where args.count == 2:
            reply.bulk(libraries.dump())
        case "restore" where args.count == 3 || args.count == 4:
            let policy = args.count == 4 ? args[3].string.lowercased() : "append"
            guard ["append", "replace", "flush"].contains(policy) else {
                reply.error("ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.")
                return true
            }
            let codes: [Bytes]
            switch FunctionLibraries.parseDump(args[2]) {
            case .success(let c): codes = c
            case .failure(let e): return fail(e)
            }
            if policy == "append" {
                for code in codes {
                    if let name = try? metadata(code).name, libraries.library(name) != nil {
                        reply.error("ERR Library \(name) already exists")
                        return true
                    }
                }
            }
            if policy == "flush" { libraries.flush() }
            for code in codes {
                if case .failure(let e) = load(shard, code, replace: policy != "append") { return fail(e) }
            }
            propagate(shard, args)
            reply.ok()
        case "stats" where args.count == 2:
            let libs = libraries.all
            reply.mapHeader(2)
            reply.bulk("running_script")
            if let running = shard.server.scriptBusy.runningFunction {
                reply.mapHeader(3)
                reply.bulk("name"); reply.bulk(running.command.count > 1 ? running.command[1] : Bytes())
                reply.bulk("command"); reply.bulkArray(running.command)
                reply.bulk("duration_ms"); reply.integer(monotonicMicroseconds() / 1000 - running.startedAt)
            } else {
                reply.null()
            }
            reply.bulk("engines"); reply.mapHeader(1)
            reply.bulk("LUA"); reply.mapHeader(2)
            reply.bulk("libraries_count"); reply.integer(libs.count)
            reply.bulk("functions_count"); reply.integer(libs.reduce(0) { $0 + $1.functions.count })
        case "kill" where args.count == 2:
            return ScriptCommands.kill(shard.server.scriptBusy, function: true, reply)
        case "help" where args.count == 2:
            let lines = ["FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                         "LOAD [REPLACE] <FUNCTION CODE>", "DELETE <LIBRARY NAME>", "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
                         "FLUSH [ASYNC|SYNC]", "DUMP", "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]", "STATS", "KILL", "HELP"]
            reply.arrayHeader(lines.count)
            for l in lines { reply.simple(l) }
        case _ where subcommandArity[sub] != nil:
            reply.error("ERR unknown subcommand or wrong number of arguments for '\(args[1].string)'. Try FUNCTION HELP.")
            return true
        default:
            reply.error(CommandError.unknownSubcommand(args[1], "function").message)
            return true
        }
        return false
    }
}

extension ScriptError {
    init(_ message: String) { reply = Array("-\(message)\r\n".utf8) }
}

extension Shard {
    /// FCALL / FCALL_RO, in a script section (ScriptSection.swift).
    func runFunction(_ spec: CommandSpec, _ conn: Connection, _ args: [Bytes], _ reply: ReplyWriter, locksHeld: Bool) -> Bool {
        guard let numkeys = Numbers.int(args[2]) else { reply.error("ERR Bad number of keys provided"); return true }
        guard numkeys >= 0 else { reply.error("ERR Number of keys can't be negative"); return true }
        guard numkeys <= args.count - 3 else { reply.error("ERR Number of keys can't be greater than number of args"); return true }
        let name = args[1].string
        guard let function = server.functions.function(name) else { reply.error("ERR Function not found"); return true }
        if spec.name == "fcall_ro" && !function.noWrites {
            reply.error("ERR Can not execute a script with write flag using *_ro command.")
            return true
        }
        if outOfMemoryBeforeCommand && !function.allowOOM && !function.noWrites {
            reply.error(ScriptCommands.outOfMemoryAtStart)
            return true
        }
        let host = scriptHost
        host.syncFunctions(with: server.functions)
        let run = ScriptRun(shard: self, db: conn.db, readOnly: function.noWrites, isFunction: true)
        run.caller = (conn.peer, conn.name)
        run.connection = conn
        run.command = args
        let keys = args[3..<(3 + numkeys)]
        if !function.noCluster && !locksHeld { noteKeys(keys, of: conn) }
        guard let outcome = inScriptSection(run, keys: keys, wholeKeyspace: function.noCluster, locksHeld: locksHeld, {
            host.fcall(function.name, keys: keys, args: args[(3 + numkeys)...], resp: conn.protocolVersion, context: run)
        }) else { return replyBusy(spec, args, reply) }
        let result = host.result
        server.errorStats.countReply(result)
        result.withUnsafeBytes { reply.buffer.append($0) }
        if !locksHeld && !deferredMessages.isEmpty { publishKeyspaceEvents() }  // after the reply
        return outcome != .replied
    }
}
