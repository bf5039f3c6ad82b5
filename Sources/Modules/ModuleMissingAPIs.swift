import Engine
import Synchronization

// API names a module asked for that Berth does not provide.
//
// A module's Init (compiled into the module from its header) asks GetApi for every name
// the header knows, hundreds of them, whether the module uses them or not. For a name
// Berth lacks, GetApi answers REDISMODULE_ERR and leaves the module's pointer as it was
// (NULL), as a server without that function does; the module can test the pointer, but
// one that calls it anyway crashes. So that such a crash can be traced, every name Berth
// lacks is logged at warning level, once per name for the life of the process.
//
// Names asked during a load are held until OnLoad returns, so the line can say which
// module asked (Init runs before SetModuleAttribs names it); names asked later (a module
// calling GetApi itself) are logged at once.

/// Invariants: `state` is the only shared data; `pending` is non-nil only between
/// `beginLoad` and `endLoad`, which the registry's load lock keeps to one load at a time.
enum ModuleMissingAPIs {
    private struct State {
        var logged: Set<String> = []
        var pending: [String]?
    }

    private static let state = Mutex(State())

    /// GetApi did not know `name` (any thread).
    static func asked(_ name: String) {
        let now: String? = state.withLock { s in
            if s.pending != nil {
                s.pending!.append(name)
                return nil
            }
            return s.logged.insert(name).inserted ? name : nil
        }
        if let now { report(now, module: nil) }
    }

    static func beginLoad() { state.withLock { $0.pending = [] } }

    /// OnLoad returned: logs the names `module` asked for that were not logged before.
    static func endLoad(module name: String) {
        let fresh: [String] = state.withLock { s in
            let names = s.pending ?? []
            s.pending = nil
            return names.filter { s.logged.insert($0).inserted }
        }
        for n in fresh { report(n, module: name) }
    }

    private static func report(_ api: String, module: String?) {
        let who = module.map { $0.isEmpty ? "a module being loaded" : "module \($0)" } ?? "a module"
        ModuleAPI.server?.log.warning("\(who) asked for API \(api), which Berth does not provide")
    }
}
