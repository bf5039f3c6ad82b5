import Engine
import CModuleHost
import Commands
import RESP
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// Modules: loading C modules written against the Valkey/Redis module API.
//
// Loading. `--loadmodule path [args]` (config file or command line) and MODULE LOAD
// dlopen the file, find `ValkeyModule_OnLoad` or else `RedisModule_OnLoad`, and call it
// with a fresh context whose first word is `berth_module_get_api` (CModuleHost). The
// module's Init asks that function for each API name; the engine registered its Swift
// implementations there once (`ModuleAPI.registerAll`), under bare names, and GetApi
// answers both prefixes. Init then calls SetModuleAttribs, which names the module; a
// module whose OnLoad fails, or that never named itself, is closed again.
//
// Commands. CreateCommand adds a `CommandSpec` flagged `.module` to this registry, with
// a statistics slot after the built-in commands. The engine looks a name up here only
// when the built-in table does not know it, and runs the command as an atomic section
// over every shard (`Shard.runModuleCommand`): a module command may Call any command
// on any key, and must see the keyspace as if it were alone, as in Redis.
//
// The rest lives beside this file: contexts and replies (ModuleContext), strings
// (ModuleString), Call (ModuleCall), keys (ModuleKeys), blocked clients (ModuleBlocking)
// and thread-safe contexts (ModuleThreads).

/// One loaded module.
final class Module: @unchecked Sendable {
    let path: String
    /// The dlopen handle; nil for a Swift module built into the executable.
    let handle: UnsafeMutableRawPointer?
    var name = ""
    var version = 0
    var commands: [Bytes] = []
    let arguments: [String]
    /// Data types it created (MODULE UNLOAD refuses such a module, as Redis does).
    var typeNames: [String] = []
    /// Blocked-client handles not yet finished (MODULE UNLOAD refuses while any remain).
    let liveBlocks = Atomic<Int>(0)

    init(path: String, handle: UnsafeMutableRawPointer?, arguments: [String]) {
        self.path = path
        self.handle = handle
        self.arguments = arguments
    }
}

/// A module's code the engine calls back: a C function `(ctx, argv, argc) -> status`, or
/// a Swift closure of a Swift module (it reads its arguments from the context).
enum ModuleCallback {
    case c(ModuleCommand.Function)
    case swift((ModuleContext) -> Int32)

    func run(_ ctx: ModuleContext, arguments: [Bytes]) -> Int32 {
        switch self {
        case .c(let function):
            let argv = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: max(1, arguments.count))
            for (i, a) in arguments.enumerated() { argv[i] = Unmanaged.passRetained(ModuleString.make(a)).toOpaque() }
            let status = function(ctx.pointer, argv, Int32(arguments.count))
            for i in 0..<arguments.count { Unmanaged<ModuleString>.fromOpaque(argv[i]!).release() }
            argv.deallocate()
            return status
        case .swift(let body):
            ctx.arguments = arguments
            return body(ctx)
        }
    }
}

/// A command a module registered: its code and the module that owns it.
final class ModuleCommand: @unchecked Sendable {
    typealias Function = @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, Int32) -> Int32
    let spec: CommandSpec
    let body: ModuleCallback
    unowned let module: Module

    init(spec: CommandSpec, body: ModuleCallback, module: Module) {
        self.spec = spec
        self.body = body
        self.module = module
    }
}

/// Loaded modules and their commands.
///
/// Invariants: all state is behind `state`'s mutex; a command's statistics id is
/// `builtinCount + slot` with `slot < maxCommands`, and a slot is never reused while the
/// server runs (an unloaded module's counters simply stop growing). Loading runs on one
/// thread at a time (`loading`), so a module's OnLoad sees the registry as it left it.
final class ModuleRegistry: @unchecked Sendable {
    static let maxCommands = 1024

    private struct State {
        var modules: [Module] = []
        var commands: [Bytes: ModuleCommand] = [:]
        var byID: [Int: ModuleCommand] = [:]
        var nextSlot = 0
    }

    private let state = Mutex(State())
    private let loading = Mutex(())
    /// Set when the first module loads, so servers without modules skip the lookup.
    private let any = Atomic<Bool>(false)

    var isEmpty: Bool { !any.load(ordering: .relaxed) }

    func command(named name: Bytes) -> ModuleCommand? {
        guard any.load(ordering: .acquiring) else { return nil }
        let key = name.lowercasedASCII()
        return state.withLock { $0.commands[key] }
    }

    func command(id: Int) -> ModuleCommand? { state.withLock { $0.byID[id] } }

    var modules: [Module] { state.withLock { $0.modules } }

    /// Every loaded module command (INFO commandstats lists them beside the built-in ones).
    var commandSpecs: [CommandSpec] { state.withLock { $0.commands.values.map(\.spec) } }

    func isNameBusy(_ name: String) -> Bool { state.withLock { s in s.modules.contains { $0.name == name } } }

    /// Adds a command during its module's OnLoad; false when the name is taken.
    func addCommand(_ name: String, module: Module, builtinCount: Int, make: (Int) -> (CommandSpec, ModuleCallback)) -> Bool {
        let key = Bytes(name.lowercased())
        return state.withLock { s in
            guard s.commands[key] == nil, s.nextSlot < ModuleRegistry.maxCommands else { return false }
            let id = builtinCount + s.nextSlot
            s.nextSlot += 1
            let (spec, fn) = make(id)
            let command = ModuleCommand(spec: spec, body: fn, module: module)
            s.commands[key] = command
            s.byID[id] = command
            module.commands.append(key)
            return true
        }
    }

    /// Runs `body` with the load lock held: one OnLoad at a time.
    func whileLoading<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        try loading.withLock { _ throws(E) in try body() }
    }

    func add(_ module: Module) {
        state.withLock { $0.modules.append(module) }
        any.store(true, ordering: .releasing)
    }

    /// Forgets a module and its commands; the caller closes the library.
    func remove(_ module: Module) {
        state.withLock { s in
            s.modules.removeAll { $0 === module }
            for key in module.commands {
                if let c = s.commands.removeValue(forKey: key) { s.byID[c.spec.id] = nil }
            }
        }
    }

    /// Drops commands a failed OnLoad registered before failing.
    func discardCommands(of module: Module) { remove(module) }
}
