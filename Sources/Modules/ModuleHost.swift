import Engine
import Commands
import Persistence
import RESP

/// The module API as the core sees it (Extensions.swift): the loaded modules and their
/// commands, the timers they created, and the MODULE command.
package final class ModuleHost: ModuleExtension {
    /// Loaded modules and their commands (ModuleRegistry.swift).
    let registry = ModuleRegistry()
    /// Timers modules created (ModuleTimers.swift).
    let timers = ModuleTimers()

    package init() {}

    package var commands: [(CommandSpec, EngineHandler)] {
        [(EngineCommands.spec("module", -2, [.admin, .noMulti], subcommands: ["list", "load", "loadex", "unload", "help"]),
          ModuleAdminCommand.run)]
    }

    package func command(named name: Bytes) -> CommandSpec? { registry.command(named: name)?.spec }
    package func commandName(id: Int) -> String? { registry.command(id: id)?.spec.name }
    package var commandSpecs: [CommandSpec] { registry.commandSpecs }

    package func commandNames(ofModule module: String) -> [String]? {
        registry.modules.first { $0.name == module }?.commands.map(\.string)
    }

    package func run(on shard: Shard, _ spec: CommandSpec, _ conn: Connection, _ args: [Bytes], _ reply: ReplyWriter,
                     locksHeld: Bool) -> Bool {
        shard.runModuleCommand(spec, conn, args, reply, locksHeld: locksHeld)
    }

    package func fireTimers(on shard: Shard, now: Int64) -> Bool { shard.fireModuleTimers(now: now) }
    package func nextTimerDue(shard: Int) -> Int64? { timers.nextDue(shard: shard) }

    package func rdbType(id: UInt64) -> (any RDBModuleType)? { ModuleAPI.type(rdbID: id) }

    package func auxRecords() -> (before: [[UInt8]], after: [[UInt8]]) { ModuleAPI.auxRecords() }

    package func load(into server: Server, path: String, arguments: [String]) throws {
        _ = try ModuleCommands.load(server, path: path, arguments: arguments)
    }
}

extension Server {
    /// The module extension main handed over: always this one.
    var moduleHost: ModuleHost { unsafeDowncast(extensions.modules, to: ModuleHost.self) }
    var modules: ModuleRegistry { moduleHost.registry }
    var moduleTimers: ModuleTimers { moduleHost.timers }
}
