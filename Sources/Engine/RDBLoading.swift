import Keyspace
import Persistence
import RESP
#if canImport(Glibc)
import Glibc
#endif

/// Loads the RDB file into the shards' stores at start, before any shard thread runs:
/// each key goes to the shard that owns its slot, keys already past their TTL are
/// dropped (as a primary drops them), FUNCTION libraries are loaded into the server.
final class StoreLoader: RDBLoadTarget {
    private let server: Server
    private let now = ShardStore.nowMilliseconds()
    private(set) var loaded = 0
    private(set) var expired = 0
    /// DEBUG RELOAD: a library already there is replaced rather than refused.
    private let replacingLibraries: Bool
    /// At start the shards already serve (answering -LOADING): each key is added under its
    /// shard's lock. DEBUG RELOAD's caller holds every lock already.
    private let locking: Bool

    init(server: Server, replacingLibraries: Bool, locking: Bool) {
        self.server = server
        self.replacingLibraries = replacingLibraries
        self.locking = locking
    }

    func aux(_ key: Bytes, _ value: Bytes) throws {
        guard key == Bytes(Snapshot.javaScriptAux) else {
            server.log.debug("RDB aux field \(key.string): \(value.string)")
            return
        }
        // A JavaScript library (Snapshot.javaScriptLibraries): its TFUNCTION LOAD arguments.
        let args = try value.withUnsafeBytes { raw -> [Bytes] in
            var reader = RESPCommandReader(raw)
            guard let args = try? reader.next(), reader.isAtEnd else { throw RDBError("Bad JavaScript library field", offset: 0) }
            return args
        }
        var arguments = args
        if replacingLibraries { arguments.insert(Bytes("REPLACE"), at: 0) }
        if let error = server.extensions.javascript.restoreLibrary(arguments, server: server) {
            throw RDBError("Failed loading JavaScript library: \(error)", offset: 0)
        }
    }

    func functionLibrary(_ source: Bytes) throws {
        if let error = server.extensions.scripting.loadFunctionLibrary(source, on: server.shards[0], replace: replacingLibraries) {
            throw RDBError("Failed loading library: \(error)", offset: 0)
        }
    }

    func key(_ key: Bytes, _ value: Value, db: Int, expireAt: Int64, access: SavedAccess) {
        if expireAt != 0 && expireAt <= now {
            expired += 1
            return
        }
        guard db >= 0 && db < server.databaseCount else { return }
        let shard = server.slots.shard(of: key)
        let section = server.offShardSection!
        if locking { _ = section.enter(shard, .outlastBusy) }
        let database = server.stores[shard].databases[db]
        let e = database.overwrite(database.table.find(key), key, value, expireAt: expireAt)
        if access != SavedAccess() { e.restoreAccess(idleSeconds: access.idleSeconds, frequency: access.frequency) }
        if locking { section.exit(shard) }
        loaded += 1
    }

    func moduleType(id: UInt64) -> (any RDBModuleType)? { server.extensions.modules.rdbType(id: id) }
}

extension Server {
    /// Loads the RDB file, when there is one. False (logged) when it is damaged: the
    /// server must not start on half a dataset. At start, before the shards run; for
    /// DEBUG RELOAD, under every shard lock.
    func loadSnapshotFile(replacingLibraries: Bool = false, atStart: Bool = false) -> Bool {
        let path = snapshots.path
        guard access(path, F_OK) == 0 else { return true }
        let start = ShardStore.nowMilliseconds()
        let loader = StoreLoader(server: self, replacingLibraries: replacingLibraries, locking: atStart)
        do {
            _ = try RDBReader.loadFile(path: path, into: loader)
        } catch {
            log.critical("Fatal error loading the DB from \(path): \(error).\(replacingLibraries ? "" : " Exiting.")")
            return false
        }
        snapshots.state.withLock { s in
            s.loadedKeys = loader.loaded
            s.expiredOnLoad = loader.expired
        }
        let ms = ShardStore.nowMilliseconds() - start
        log.notice("Done loading RDB, keys loaded: \(loader.loaded), keys expired: \(loader.expired).")
        log.notice("DB loaded from disk: \(ms / 1000).\(String(1000 + ms % 1000).dropFirst()) seconds")
        return true
    }
}
