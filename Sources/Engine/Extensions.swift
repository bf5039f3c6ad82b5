import Commands
import Persistence
import RESP

// The engines built in their own targets, and the only doors between them and the core.
//
// Lua scripting (target Scripting), the module API (Modules) and JavaScript (JavaScript)
// stand on Engine: they run commands through the one call path, take shard locks through
// a LockSection and block through EngineWait, all with `package` access. Engine, below
// them, knows them only by the three protocols here: which commands each adds, how to run
// a command flagged `.script` or `.module`, and the few facts the core reports (INFO's
// script counts, COMMAND's module filter, module timers' deadlines). berth-server's main
// makes one of each and hands them to `Server.init`; a Server never runs without them.

/// Lua's EVAL and FCALL families (Scripting target).
package protocol ScriptingExtension: AnyObject, Sendable {
    /// EVAL, EVALSHA, FCALL and their read-only forms: flagged `.script`, run by `run`.
    var scriptSpecs: [CommandSpec] { get }
    /// SCRIPT and FUNCTION: run as the core's own commands are.
    var commands: [(CommandSpec, EngineHandler)] { get }
    /// Runs a `.script` command on `shard`'s thread; true when it failed.
    func run(on shard: Shard, _ spec: CommandSpec, _ conn: Connection, _ args: [Bytes], _ reply: ReplyWriter,
             locksHeld: Bool) -> Bool
    /// Whether the script a `.script` command names may write: false only when its
    /// shebang or its function says `no-writes` (CLIENT PAUSE WRITE lets those run).
    func mayWrite(_ spec: CommandSpec, _ args: [Bytes]) -> Bool
    /// INFO memory's number_of_cached_scripts and number_of_functions.
    var cachedScriptCount: Int { get }
    var functionCount: Int { get }
    /// Every FUNCTION library's source, for a snapshot.
    var functionLibrarySources: [Bytes] { get }
    /// Loads a library read from a file (on `shard`'s interpreter, before clients come);
    /// the error text when it does not load.
    func loadFunctionLibrary(_ source: Bytes, on shard: Shard, replace: Bool) -> String?
}

/// Modules loaded with --loadmodule or MODULE LOAD (Modules target).
package protocol ModuleExtension: AnyObject, Sendable {
    /// MODULE.
    var commands: [(CommandSpec, EngineHandler)] { get }
    /// A loaded module's command; looked up on every call, since MODULE UNLOAD takes
    /// commands away.
    func command(named name: Bytes) -> CommandSpec?
    /// The name of the module command with statistics id `id`.
    func commandName(id: Int) -> String?
    /// Every loaded module's commands (INFO commandstats).
    var commandSpecs: [CommandSpec] { get }
    /// The commands of the module called `module`, nil when none is loaded
    /// (COMMAND LIST FILTERBY MODULE).
    func commandNames(ofModule module: String) -> [String]?
    /// Runs a `.module` command on `shard`'s thread; true when it failed.
    func run(on shard: Shard, _ spec: CommandSpec, _ conn: Connection, _ args: [Bytes], _ reply: ReplyWriter,
             locksHeld: Bool) -> Bool
    /// Fires `shard`'s due module timers; true when any fired.
    func fireTimers(on shard: Shard, now: Int64) -> Bool
    /// When `shard`'s next module timer is due, in milliseconds.
    func nextTimerDue(shard: Int) -> Int64?
    /// The data type a file's module value names by its 64-bit id, to load it.
    func rdbType(id: UInt64) -> (any RDBModuleType)?
    /// Every data type's module-global records for a snapshot (aux_save), to be written
    /// before the keys and after them; taken at the snapshot's instant.
    func auxRecords() -> (before: [[UInt8]], after: [[UInt8]])
    /// Loads a module at startup (--loadmodule); throws what the log should say.
    func load(into server: Server, path: String, arguments: [String]) throws
}

/// Triggers and Functions' JavaScript libraries (JavaScript target).
package protocol JavaScriptExtension: AnyObject, Sendable {
    /// TFUNCTION, TFCALL, TFCALLASYNC.
    var commands: [(CommandSpec, EngineHandler)] { get }
    /// Stops every library's engine at shutdown; false when one would not stop.
    func closeAll() -> Bool
    /// Each library as the TFUNCTION LOAD arguments that load it again (for snapshots).
    var librariesAsLoadArguments: [[Bytes]] { get }
    /// Loads a library from such arguments (a snapshot being loaded); the error text when
    /// it does not load.
    func restoreLibrary(_ arguments: [Bytes], server: Server) -> String?
}

/// The three, as main hands them to the server.
package struct Extensions: Sendable {
    package let scripting: any ScriptingExtension
    package let modules: any ModuleExtension
    package let javascript: any JavaScriptExtension

    package init(scripting: any ScriptingExtension, modules: any ModuleExtension, javascript: any JavaScriptExtension) {
        self.scripting = scripting
        self.modules = modules
        self.javascript = javascript
    }

    /// Statistics slots kept for module commands, after the built-in commands'.
    package static let moduleCommandSlots = 1024
}
