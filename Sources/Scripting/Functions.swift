import Engine
import CLua
import Commands
import Keyspace
import Persistence
import RESP
import Synchronization

// Redis 7 functions: `#!lua name=<lib>` libraries whose code registers functions with
// redis.register_function, called by name with FCALL / FCALL_RO.
//
// The libraries live once, server-wide, in `FunctionLibraries`; FUNCTION LOAD checks a
// library by running it in the loading shard's interpreter without installing anything,
// then stores it and bumps the generation. Every shard's interpreter reinstalls all
// libraries before its next FCALL when the generation moved (ScriptHost.syncFunctions).
// An FCALL runs like EVAL: an atomic section over every shard.

/// One function a library registered.
struct LibraryFunction {
    let name: String
    let flags: Int
    let description: String

    static let flagNames = ["no-writes", "allow-oom", "allow-stale", "no-cluster", "allow-cross-slot-keys"]
    var noWrites: Bool { flags & 1 != 0 }
    var allowOOM: Bool { flags & 2 != 0 }
    var noCluster: Bool { flags & 8 != 0 }
    var flagList: [String] { LibraryFunction.flagNames.enumerated().filter { flags & (1 << $0.offset) != 0 }.map(\.element) }
}

struct FunctionLibrary {
    let name: String
    let code: Bytes
    let functions: [LibraryFunction]
}

/// The loaded libraries and which library each function belongs to.
///
/// Invariants: behind one mutex; every function name maps to exactly one library that
/// lists it; `generation` grows on every change.
final class FunctionLibraries: Sendable {
    private struct State {
        var libraries: [String: FunctionLibrary] = [:]
        var owner: [String: String] = [:]
    }
    private let state = Mutex(State())
    let generation = Atomic<Int>(0)

    var all: [FunctionLibrary] { state.withLock { s in s.libraries.values.sorted { $0.name < $1.name } } }

    func library(_ name: String) -> FunctionLibrary? { state.withLock { $0.libraries[name] } }

    /// A function by name, whatever its case (as Redis's function names).
    func function(_ name: String) -> LibraryFunction? {
        let key = name.lowercased()
        return state.withLock { s in
            guard let lib = s.owner[key] else { return nil }
            return s.libraries[lib]?.functions.first { $0.name.lowercased() == key }
        }
    }

    /// Adds (or with `replace`, replaces) a library; the error text when it cannot.
    func add(_ library: FunctionLibrary, replace: Bool) -> String? {
        let error: String? = state.withLock { s in
            if s.libraries[library.name] != nil && !replace { return "ERR Library '\(library.name)' already exists" }
            for f in library.functions {
                if let other = s.owner[f.name.lowercased()], other != library.name { return "ERR Function \(f.name) already exists" }
            }
            if let old = s.libraries[library.name] { for f in old.functions { s.owner[f.name.lowercased()] = nil } }
            s.libraries[library.name] = library
            for f in library.functions { s.owner[f.name.lowercased()] = library.name }
            return nil
        }
        if error == nil { generation.add(1, ordering: .releasing) }
        return error
    }

    func delete(_ name: String) -> Bool {
        let found: Bool = state.withLock { s in
            guard let lib = s.libraries.removeValue(forKey: name) else { return false }
            for f in lib.functions { s.owner[f.name.lowercased()] = nil }
            return true
        }
        if found { generation.add(1, ordering: .releasing) }
        return found
    }

    func flush() {
        state.withLock { $0 = State() }
        generation.add(1, ordering: .releasing)
    }

    /// FUNCTION DUMP's payload, in Redis's format (Persistence/FunctionDump.swift).
    func dump() -> Bytes { Bytes(FunctionDump.payload(all.map { $0.code })) }

    /// The libraries of a FUNCTION RESTORE payload, or the error reply.
    static func parseDump(_ payload: Bytes) -> Result<[Bytes], ScriptError> {
        do {
            return .success(try FunctionDump.sources(payload))
        } catch let e as RDBError {
            return .failure(ScriptError("ERR \(e.message)"))
        } catch {
            return .failure(ScriptError("ERR payload is not a function dump"))
        }
    }
}

extension ScriptHost {
    /// Reinstalls every library when they changed since this interpreter installed them.
    func syncFunctions(with libraries: FunctionLibraries) {
        let g = libraries.generation.load(ordering: .acquiring)
        guard g != functionGeneration else { return }
        berth_lua_flush_functions(lua)
        for lib in libraries.all {
            guard let (_, source) = try? ScriptFunctions.metadata(lib.code) else { continue }
            _ = check(source, install: true)
        }
        functionGeneration = g
    }

    /// Runs library code; the functions it registers, or the error reply bytes.
    func check(_ source: Bytes, install: Bool) -> Result<[LibraryFunction], ScriptError> {
        let status = source.withUnsafeBytes { raw in
            berth_lua_load_library(lua, raw.baseAddress?.assumingMemoryBound(to: CChar.self), raw.count, install ? 1 : 0)
        }
        guard status == 0 else { return .failure(ScriptError(reply: result)) }
        let fields = result.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        var functions: [LibraryFunction] = []
        var i = 0
        while i + 2 < fields.count {
            functions.append(LibraryFunction(name: fields[i], flags: Int(fields[i + 1]) ?? 0, description: fields[i + 2]))
            i += 3
        }
        return .success(functions.sorted { $0.name < $1.name })
    }

    /// FCALL: false when the reply is an error.
    func fcall(_ name: String, keys: ArraySlice<Bytes>, args: ArraySlice<Bytes>, resp: Int, context: ScriptRun) -> ScriptOutcome {
        withArguments(keys: keys, args: args) { keyPointers, keyLengths, argPointers, argLengths in
            ScriptOutcome(rawValue: berth_lua_fcall(lua, name, keyPointers, keyLengths, Int32(keys.count), argPointers, argLengths, Int32(args.count),
                            Int32(resp), Unmanaged.passUnretained(context).toOpaque())) ?? .failed
        }
    }
}

/// An error reply from the Lua host, as RESP bytes.
struct ScriptError: Error {
    let reply: [UInt8]
}
