import Engine
import Commands
import Keyspace
import RESP

/// Lua scripting as the core sees it (Extensions.swift): the script cache and the function
/// libraries server-wide, a Lua interpreter per shard thread, and the commands that reach
/// them.
package final class LuaScripting: ScriptingExtension {
    /// Scripts loaded by EVAL and SCRIPT LOAD (ScriptCache.swift).
    let scripts = ScriptCache()
    /// Libraries loaded by FUNCTION LOAD (Functions.swift).
    let functions = FunctionLibraries()

    package init() {}

    package var scriptSpecs: [CommandSpec] { ScriptCommands.specs + ScriptFunctions.specs }

    package var commands: [(CommandSpec, EngineHandler)] {
        [(EngineCommands.spec("script", -2, [.stale], subcommands: ["load", "exists", "flush", "kill", "help"]),
          ScriptCommands.script),
         (EngineCommands.spec("function", -2, [.stale],
                              subcommands: ["load", "delete", "list", "flush", "dump", "restore", "stats", "kill", "help"]),
          ScriptFunctions.function)]
    }

    package func run(on shard: Shard, _ spec: CommandSpec, _ conn: Connection, _ args: [Bytes], _ reply: ReplyWriter,
                     locksHeld: Bool) -> Bool {
        shard.runScript(spec, conn, args, reply, locksHeld: locksHeld)
    }

    package func mayWrite(_ spec: CommandSpec, _ args: [Bytes]) -> Bool {
        guard args.count > 1 else { return true }
        switch spec.name {
        case "eval": return !((try? ScriptCommands.shebang(args[1]).noWrites) ?? false)
        case "evalsha":
            guard let body = scripts.body(args[1].string) else { return true }
            return !((try? ScriptCommands.shebang(body).noWrites) ?? false)
        case "fcall": return !(functions.function(args[1].string)?.noWrites ?? false)
        default: return true
        }
    }

    package var cachedScriptCount: Int { scripts.count }
    package var functionCount: Int { functions.all.reduce(0) { $0 + $1.functions.count } }
    package var functionLibrarySources: [Bytes] { functions.all.map { $0.code } }

    package func loadFunctionLibrary(_ source: Bytes, on shard: Shard, replace: Bool) -> String? {
        switch ScriptFunctions.load(shard, source, replace: replace) {
        case .success: return nil
        case .failure(let e):
            // The reply is "-<message>\r\n".
            return String(decoding: e.reply.dropFirst().prefix { $0 != 13 }, as: UTF8.self)
        }
    }
}

extension Server {
    /// The scripting extension main handed over: always this one.
    var lua: LuaScripting { unsafeDowncast(extensions.scripting, to: LuaScripting.self) }
    var scripts: ScriptCache { lua.scripts }
    var functions: FunctionLibraries { lua.functions }
}
