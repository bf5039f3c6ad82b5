import Engine
import Commands
import Keyspace
import RESP

/// EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT.
enum ScriptCommands {
    /// Key positions: `numkeys` keys after it (nothing when numkeys is not a number).
    static let keySpec = KeySpec(finder: { args in
        guard args.count >= 3, let n = Numbers.int(args[2]), n > 0, n <= args.count - 3 else { return [] }
        return Array(3..<(3 + n))
    })

    /// Run by `Shard.runScript` in a script section (ScriptSection.swift). `.allShards`
    /// makes EXEC lock every shard for a transaction that contains one.
    static let specs: [CommandSpec] = ["eval", "evalsha", "eval_ro", "evalsha_ro"].map { name in
        var flags: CommandFlags = [.script, .engine, .allShards, .stale]
        if name.hasSuffix("_ro") { flags.insert(.readonly) }
        return CommandSpec(name, arity: -3, flags: flags, keys: keySpec)
    }

    /// `#!lua [flags=a,b]` on the first line: the flags that matter here, and the body with
    /// that line turned into a comment (so line numbers stay).
    static func shebang(_ body: Bytes) throws(CommandError) -> Shebang {
        guard body.count >= 2, body[0] == 35, body[1] == 33 else {  // "#!"
            return Shebang(flagged: false, noWrites: false, noCluster: false, allowOOM: false, source: body)
        }
        var raw = body.array
        let end = raw.firstIndex(of: 10) ?? raw.count
        let line = String(decoding: raw[2..<end], as: UTF8.self).split(separator: " ").map(String.init)
        guard let engine = line.first, engine == "lua" else {
            throw CommandError("ERR Unexpected engine in script shebang: #!\(line.first ?? "")")
        }
        var noWrites = false, noCluster = false, allowOOM = false
        for part in line.dropFirst() {
            guard part.hasPrefix("flags=") else { throw CommandError("ERR Unknown lua shebang option: \(part)") }
            for flag in part.dropFirst(6).split(separator: ",") {
                switch flag {
                case "no-writes": noWrites = true
                case "no-cluster": noCluster = true
                case "allow-oom": allowOOM = true
                case "allow-stale", "allow-cross-slot-keys": break
                default: throw CommandError("ERR Unexpected flag in script shebang: \(flag)")
                }
            }
        }
        raw[0] = 45  // "--" comments the line out
        raw[1] = 45
        return Shebang(flagged: true, noWrites: noWrites, noCluster: noCluster, allowOOM: allowOOM, source: Bytes(raw))
    }

    /// What a script's `#!lua` line says; `flagged` when it has one (Redis then applies
    /// the flags' rules, such as refusing the script at its start when out of memory).
    struct Shebang {
        let flagged: Bool, noWrites: Bool, noCluster: Bool, allowOOM: Bool
        let source: Bytes
    }

    /// Redis's refusal of a script with flags, or a function, that may write while the
    /// server is over maxmemory with nothing to evict.
    static let outOfMemoryAtStart = "OOM allow-oom flag is not set on the script, can not run it when used memory > 'maxmemory'"

    /// SCRIPT KILL / FUNCTION KILL: stops the busy script of that kind unless it wrote.
    static func kill(_ busy: ScriptBusy, function: Bool, _ reply: ReplyWriter) -> Bool {
        guard busy.running.load(ordering: .acquiring) == (function ? 2 : 1) else {
            reply.error("NOTBUSY No scripts in execution right now.")
            return true
        }
        if busy.wrote.load(ordering: .acquiring) {
            reply.error("UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.")
            return true
        }
        busy.kill.store(true, ordering: .releasing)
        reply.ok()
        return false
    }

    /// SCRIPT LOAD / EXISTS / FLUSH / KILL / HELP.
    static func script(_ shard: Shard, _ conn: Connection, _ args: [Bytes], _ reply: ReplyWriter) -> Bool {
        let cache = shard.server.scripts
        switch args[1].string.lowercased() {
        case "load" where args.count == 3:
            let source: Bytes
            do { source = try shebang(args[2]).source } catch { reply.error(error.message); return true }
            let sha = ScriptCache.sha1(args[2])
            let host = shard.scriptHost
            host.sync(with: cache)
            if let error = host.load(sha: sha, source: source) {
                shard.server.errorStats.countReply(error)
                error.withUnsafeBytes { reply.buffer.append($0) }
                return true
            }
            cache.add(args[2])
            reply.bulk(sha)
        case "exists" where args.count >= 3:
            reply.arrayHeader(args.count - 2)
            for a in args.dropFirst(2) { reply.integer(cache.body(a.string) == nil ? 0 : 1) }
        case "show" where args.count == 3:
            // Valkey 8's SCRIPT SHOW: the body of a cached script.
            guard let body = cache.body(args[2].string) else {
                reply.error("NOSCRIPT No matching script. Please use EVAL.")
                return true
            }
            reply.bulk(body)
        case "flush" where args.count <= 3:
            if args.count == 3 && !args[2].equalsIgnoringCase("async") && !args[2].equalsIgnoringCase("sync") {
                reply.error("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
                return true
            }
            cache.flush()
            reply.ok()
        case "kill" where args.count == 2:
            return kill(shard.server.scriptBusy, function: false, reply)
        case "help" where args.count == 2:
            let lines = ["SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                         "EXISTS <sha1> [<sha1> ...]", "    Return information about the existence of the scripts in the script cache.",
                         "FLUSH [ASYNC|SYNC]", "    Flush the Lua scripts cache.",
                         "KILL", "    Kill the currently executing Lua script.",
                         "LOAD <script>", "    Load a script into the scripts cache without executing it.",
                         "SHOW <sha1>", "    Show a script from the scripts cache.",
                         "HELP", "    Print this help."]
            reply.arrayHeader(lines.count)
            for l in lines { reply.simple(l) }
        default:
            reply.error("ERR unknown subcommand or wrong number of arguments for '\(args[1].string)'. Try SCRIPT HELP.")
            return true
        }
        return false
    }
}

extension Shard {
    var scriptHost: ScriptHost {
        if let h = scriptingState { return unsafeDowncast(h, to: ScriptHost.self) }
        let h = ScriptHost()
        scriptingState = h
        return h
    }

    /// EVAL and friends: an atomic section over every shard, unless EXEC already holds it.
    func runScript(_ spec: CommandSpec, _ conn: Connection, _ args: [Bytes], _ reply: ReplyWriter, locksHeld: Bool) -> Bool {
        if spec.name.hasPrefix("fcall") { return runFunction(spec, conn, args, reply, locksHeld: locksHeld) }
        guard let numkeys = Numbers.int(args[2]) else { reply.error(CommandError.notInteger.message); return true }
        guard numkeys >= 0 else { reply.error("ERR Number of keys can't be negative"); return true }
        guard numkeys <= args.count - 3 else { reply.error("ERR Number of keys can't be greater than number of args"); return true }
        let cache = server.scripts
        let byBody = spec.name == "eval" || spec.name == "eval_ro"
        let sha = byBody ? ScriptCache.sha1(args[1]) : args[1].string.lowercased()
        guard let body = byBody ? args[1] : cache.body(sha) else {
            reply.error("NOSCRIPT No matching script. Please use EVAL.")
            return true
        }
        let shebang: ScriptCommands.Shebang
        do { shebang = try ScriptCommands.shebang(body) } catch { reply.error(error.message); return true }
        let noWrites = shebang.noWrites, noCluster = shebang.noCluster, source = shebang.source
        if outOfMemoryBeforeCommand && shebang.flagged && !shebang.allowOOM && !noWrites && !spec.flags.contains(.readonly) {
            reply.error(ScriptCommands.outOfMemoryAtStart)
            return true
        }
        let host = scriptHost
        host.sync(with: cache)
        if let error = host.load(sha: sha, source: source) {
            server.errorStats.countReply(error)
            error.withUnsafeBytes { reply.buffer.append($0) }
            return true
        }
        if byBody { cache.add(body) }
        let run = ScriptRun(shard: self, db: conn.db, readOnly: noWrites || spec.flags.contains(.readonly))
        run.refusesGrowth = outOfMemoryBeforeCommand && !shebang.flagged
        run.caller = (conn.peer, conn.name)
        run.connection = conn
        let keys = args[3..<(3 + numkeys)]
        if !noCluster && !locksHeld { noteKeys(keys, of: conn) }
        guard let outcome = inScriptSection(run, keys: keys, wholeKeyspace: noCluster, locksHeld: locksHeld, {
            host.run(sha: sha, keys: keys, args: args[(3 + numkeys)...], resp: conn.protocolVersion, context: run)
        }) else { return replyBusy(spec, args, reply) }
        let result = host.result
        server.errorStats.countReply(result)
        result.withUnsafeBytes { reply.buffer.append($0) }
        if !locksHeld && !deferredMessages.isEmpty { publishKeyspaceEvents() }  // after the reply
        return outcome != .replied
    }
}
