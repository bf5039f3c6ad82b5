import Commands
import Keyspace
import Persistence
import RESP
import Synchronization
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

// Loading the append-only file at start (appendonly yes), before any shard runs: the
// manifest's base (an RDB image, or commands), then each incremental file's commands
// replayed through the one call path (runNested) on shard 0's context, which sees every
// shard's stores. While replaying no key expires (ExpiryHold.isReplaying): a key's
// deletion is in the file where it happened, and a key whose TTL passed while the server
// was down is removed by the expiry that follows, as a DEL in the new file.
//
// A file that ends inside a command (a crash while it was written) is cut back to its
// last whole command when it is the last file and aof-load-truncated is yes, as Redis
// does; so is a transaction the crash left without its EXEC. Anything else that is not
// a command stops the start, naming the file and offset.

extension Server {
    /// With appendonly yes: loads the files, or (when there are none yet) the RDB file
    /// and a first base made of it, then appends from here on. False (logged) when a file
    /// is damaged or the directory cannot be written.
    func openAppendOnlyFile() -> Bool {
        let directory = config.get("dir").trimmingSuffix("/") + "/" + config.get("appenddirname")
        let prefix = config.get("appendfilename")
        let manifestPath = directory + "/" + AOFManifest.manifestName(prefix)
        var manifest = AOFManifest()
        if access(manifestPath, F_OK) == 0 {
            do {
                let text = try String(decodingFile: manifestPath)
                manifest = try AOFManifest.parse(text)
            } catch {
                log.critical("Fatal error reading the AOF manifest \(manifestPath): \(error). Exiting.")
                return false
            }
            guard replayAppendOnlyFiles(manifest, directory: directory, atStart: true) else { return false }
        } else {
            if mkdir(directory, 0o755) != 0 && errno != EEXIST {
                log.critical("Can't create the append-only file directory \(directory): \(Errno(rawValue: errno)). Exiting.")
                return false
            }
            // No append-only file yet: start it from the RDB file, when there is one,
            // rather than from nothing (Redis would start empty and lose the RDB's data).
            guard loadSnapshotFile(atStart: true) else { return false }
        }
        let aof = AppendOnlyFile(server: self, directory: directory, prefix: prefix, manifest: manifest)
        if manifest.base == nil && manifest.incrementals.isEmpty {
            let base = AOFFile(name: AOFManifest.baseName(prefix, 1, rdb: true), sequence: 1, kind: .base)
            if let failure = snapshots.writeNow(to: aof.path(base.name), aofBase: true) {
                log.critical("Can't write the append-only file's base \(aof.path(base.name)): \(failure). Exiting.")
                return false
            }
            manifest.base = base
            aof.adopt(manifest)
            log.notice("Creating AOF base file \(base.name) on server start")
        }
        do { try aof.openForAppending() } catch {
            log.critical("Can't open the append-only file in \(directory) for appending: \(error). Exiting.")
            return false
        }
        attachUnderEveryLock(aof)
        return true
    }

    /// DEBUG LOADAOF: the file written and fsynced, the keyspace emptied and the file
    /// replayed into it, under every shard lock. Nil on success, else the error reply.
    func reloadAppendOnlyFile(on shard: Shard) -> String? {
        guard let aof else { return "ERR DEBUG LOADAOF needs appendonly yes" }
        _ = aof.syncNow()
        let section: LockSection = shard.section
        guard section.enter(section.everyShard, .refuseWhenBusy) else { return "BUSY Berth is busy running a script." }
        defer { section.leave(section.everyShard) }
        for store in stores { for db in store.databases { db.removeAll() } }
        return replayAppendOnlyFiles(aof.currentManifest, directory: aof.directory, atStart: false, on: shard) ? nil
            : "ERR Error trying to load the AOF files, check server logs."
    }

    /// Replays base and incremental files in order; false (logged) when one is damaged.
    /// At start the shards already serve (answering -LOADING), so each command takes every
    /// shard lock; DEBUG LOADAOF's caller (`shard`) holds them already.
    private func replayAppendOnlyFiles(_ manifest: AOFManifest, directory: String, atStart: Bool, on shard: Shard? = nil) -> Bool {
        let start = ShardStore.nowMilliseconds()
        expiryHold.setReplaying(true)
        defer {
            expiryHold.setReplaying(false)
            if atStart { forgetReplayNews() }
        }
        let replay = AOFReplay(server: self, shard: shard ?? shards[0], locking: atStart)
        if let base = manifest.base {
            guard replay.file(directory + "/" + base.name, isLast: manifest.incrementals.isEmpty) else { return false }
        }
        for (i, incremental) in manifest.incrementals.enumerated() {
            guard replay.file(directory + "/" + incremental.name, isLast: i == manifest.incrementals.count - 1) else { return false }
        }
        let ms = ShardStore.nowMilliseconds() - start
        snapshots.state.withLock { s in
            s.loadedKeys = stores.reduce(0) { n, store in store.databases.reduce(n) { $0 + $1.count } }
            if atStart { s.dirtyAtLastSave = 0 }
        }
        log.notice("DB loaded from append only file: \(ms / 1000).\(String(1000 + ms % 1000).dropFirst()) seconds")
        return true
    }

    /// What replaying left for shards that are not running yet (keyspace events, keys
    /// readied for blocked clients that do not exist): none of it is news to anyone.
    private func forgetReplayNews() {
        let section = offShardSection!
        _ = section.enter(section.everyShard, .outlastBusy)
        for store in stores {
            store.ready.keys.removeAll()
            store.keyEvents.entries.removeAll()
        }
        section.exit(section.everyShard)
    }

    /// CONFIG SET appendonly: on, a new append-only file starts with a rewrite (its base is
    /// a snapshot, and it follows the effect stream from that snapshot's instant); off, the
    /// file is closed and left as it is. Nil on success, else the error reply.
    func turnAppendOnly(on: Bool, section: LockSection) -> String? {
        if !on {
            guard let aof = appendOnlyFile.withLock({ f -> AppendOnlyFile? in defer { f = nil }; return f }) else { return nil }
            durability.serve(nil, always: false, position: effects.appended)
            effects.detach(aof)
            aof.close()
            updateDiskError()
            return nil
        }
        guard aof == nil else { return nil }
        guard !snapshots.isRunning else { return "ERR Background save in progress: try CONFIG SET appendonly yes again when it ends" }
        let directory = config.get("dir").trimmingSuffix("/") + "/" + config.get("appenddirname")
        if mkdir(directory, 0o755) != 0 && errno != EEXIST {
            return "ERR Can't create the append-only file directory \(directory): \(Errno(rawValue: errno))"
        }
        let aof = AppendOnlyFile(server: self, directory: directory, prefix: config.get("appendfilename"), manifest: AOFManifest())
        if let error = snapshots.backgroundRewrite(aof, on: section, attaching: true) { return error }
        return nil
    }

    /// CONFIG SET appendfsync: the file's policy, and whether replies wait for its fsync.
    func applyFsyncPolicy() {
        guard let aof else { return }
        let policy = AppendOnlyFile.policy(named: config.get("appendfsync"))
        aof.policy.store(policy.rawValue, ordering: .relaxed)
        durability.serve(aof, always: policy == .always, position: 0)
    }

    /// Makes `aof` the file effects are written to, and replies wait for under always.
    func attach(_ aof: AppendOnlyFile) {
        effects.attach(aof)
        appendOnlyFile.withLock { $0 = aof }
        durability.serve(aof, always: aof.fsyncPolicy == .always, position: effects.appended)
    }

    /// At start, with the shards serving: attached at an instant when no write runs.
    private func attachUnderEveryLock(_ aof: AppendOnlyFile) {
        let section = offShardSection!
        _ = section.enter(section.everyShard, .outlastBusy)
        attach(aof)
        section.exit(section.everyShard)
    }
}

/// Replays files into the keyspace (see the top of this file). Main thread, at start.
final class AOFReplay {
    private let server: Server
    private let shard: Shard
    private var db = 0
    /// Commands since a MULTI, applied at its EXEC; and where that MULTI started.
    private var transaction: [[Bytes]]?
    private var transactionStart = 0
    private let connection: Connection
    private let scratch = IOBuffer(capacity: 256)
    private(set) var commands = 0
    private let locking: Bool
    /// At start, a context of its own (the shard threads use theirs); DEBUG LOADAOF runs
    /// on its shard's thread, in that shard's context.
    private let context: CommandContext

    init(server: Server, shard: Shard, locking: Bool) {
        self.server = server
        self.shard = shard
        self.locking = locking
        context = locking ? CommandContext(stores: server.stores, slots: server.slots, reply: ReplyWriter(buffer: IOBuffer(capacity: 64)))
            : shard.context
        connection = Connection(id: -1, fd: FileDescriptor(rawValue: -1), peer: "aof", local: "", authenticated: true,
                                maxBulkLength: Int.max, now: ShardStore.nowMilliseconds())
    }

    /// One file: an RDB image (a base written with the RDB preamble) or commands, or an
    /// RDB image followed by commands (a single-file AOF from Redis before 7).
    func file(_ path: String, isLast: Bool) -> Bool {
        let bytes: [UInt8]
        do { bytes = try readWholeFile(path) } catch {
            server.log.critical("Fatal error: can't open the append only file \(path) for reading: \(error). Exiting.")
            return false
        }
        var offset = 0
        if bytes.starts(with: Array("REDIS".utf8)) {
            let loader = StoreLoader(server: server, replacingLibraries: false, locking: locking)
            do {
                offset = try bytes.withUnsafeBytes { try RDBReader.load($0, into: loader).bytesRead }
            } catch {
                server.log.critical("Fatal error loading the RDB preamble of the append only file \(path): \(error). Exiting.")
                return false
            }
        }
        return commands(in: bytes, from: offset, path: path, isLast: isLast)
    }

    private func commands(in bytes: [UInt8], from start: Int, path: String, isLast: Bool) -> Bool {
        bytes.withUnsafeBytes { raw in
            var reader = RESPCommandReader(raw, startingAt: start)
            db = 0
            while true {
                let args: [Bytes]
                do throws(RESPCommandReader.Failure) {
                    guard let next = try reader.next() else { break }
                    args = next
                } catch {
                    return damaged(error, path: path, isLast: isLast, size: raw.count)
                }
                if let failure = apply(args, at: reader.offset) {
                    server.log.critical("Fatal error replaying the append only file \(path) at offset \(reader.offset): \(failure). Exiting.")
                    return false
                }
            }
            if transaction != nil {
                // A crash between MULTI and EXEC: that transaction never happened.
                return truncate(path, to: transactionStart, isLast: isLast, size: raw.count, why: "an unfinished MULTI/EXEC transaction")
            }
            return true
        }
    }

    private func damaged(_ error: RESPCommandReader.Failure, path: String, isLast: Bool, size: Int) -> Bool {
        switch error {
        case .truncated(let offset):
            let at = transaction != nil ? transactionStart : offset
            transaction = nil
            return truncate(path, to: at, isLast: isLast, size: size, why: "a short read (the file ends inside a command)")
        case .malformed(let offset):
            server.log.critical("Bad file format reading the append only file \(path) at offset \(offset): make a backup of your AOF file, then use redis-check-aof --fix <filename.manifest>. Exiting.")
            return false
        }
    }

    /// aof-load-truncated: the last file's damaged tail is cut off, and the start goes on.
    private func truncate(_ path: String, to offset: Int, isLast: Bool, size: Int, why: String) -> Bool {
        guard isLast, server.config.get("aof-load-truncated") == "yes" else {
            server.log.critical("Fatal error: the append only file \(path) is truncated at offset \(offset) (\(why)). Run redis-check-aof --fix <filename.manifest>, or set aof-load-truncated yes to load what is whole. Exiting.")
            return false
        }
        guard Glibc.truncate(path, off_t(offset)) == 0 else {
            server.log.critical("Could not truncate the append only file \(path) to \(offset) bytes: \(Errno(rawValue: errno)). Exiting.")
            return false
        }
        server.log.warning("!!! Warning: \(why) in the append only file \(path): \(size - offset) bytes after offset \(offset) dropped. AOF loaded anyway because aof-load-truncated is enabled")
        return true
    }

    /// Applies one command; the reason when it cannot be applied.
    private func apply(_ args: [Bytes], at end: Int) -> String? {
        let name = args[0].lowercased()
        if name == Bytes("select") {
            guard args.count == 2, let n = Numbers.int(args[1]), n >= 0, n < server.databaseCount else { return "bad SELECT" }
            db = n
            return nil
        }
        if name == Bytes("multi") {
            transaction = []
            transactionStart = end - encodedLength(args)
            return nil
        }
        if name == Bytes("exec") {
            guard let queued = transaction else { return "EXEC without MULTI" }
            transaction = nil
            for c in queued { if let failure = run(c) { return failure } }
            return nil
        }
        if transaction != nil {
            transaction!.append(args)
            return nil
        }
        return run(args)
    }

    private func run(_ args: [Bytes]) -> String? {
        guard let spec = server.commands.lookup(args[0]) ?? server.extensions.modules.command(named: args[0]) else {
            return "unknown command '\(args[0].string)'"
        }
        guard spec.arityMatches(args.count) else { return "wrong number of arguments for '\(spec.name)'" }
        commands += 1
        let cc = context
        cc.now = ShardStore.nowMilliseconds()
        if spec.flags.contains(.module) { return runModuleCommand(spec, args) }
        if spec.flags.contains(.engine) {
            // Library changes are effects too (FUNCTION LOAD/DELETE/FLUSH/RESTORE, TFUNCTION).
            guard spec.name == "function" || spec.name == "tfunction", let handler = server.engineCommands[spec.id] else {
                return "'\(spec.name)' cannot be replayed"
            }
            scratch.clear()
            let w = ReplyWriter(buffer: scratch, protocolVersion: 2, countsErrors: false)
            if handler(shard, connection, args, w) {
                // As for any command of the file, an error changes nothing and replay goes on.
                server.log.warning("\(spec.name) in the append only file failed: \(String(decoding: scratch.readableArray.prefix(200), as: UTF8.self))")
            }
            return nil
        }
        guard !spec.flags.contains(.script) else { return "'\(spec.name)' cannot be replayed" }
        // A command's error (as in the original run) changes nothing: replay goes on. What
        // it replays is in the file already: no effects.
        let suppressed = cc.effectsSuppressed
        cc.effectsSuppressed = true
        let section = server.offShardSection!
        if locking { _ = section.enter(section.everyShard, .outlastBusy) }
        _ = server.runNested(spec, args, in: cc, db: db, protocolVersion: 2, countingErrors: false)
        if locking { section.exit(section.everyShard) }
        cc.effectsSuppressed = suppressed
        return nil
    }

    /// A module's own command (what ReplicateVerbatim propagates): run by the module on a
    /// shard's thread, with its section, as any module command. At start the shard's
    /// thread runs it while this one waits; DEBUG LOADAOF runs on that thread already,
    /// holding every lock. Its own propagation is off: it is in the file already.
    private func runModuleCommand(_ spec: CommandSpec, _ args: [Bytes]) -> String? {
        connection.db = db
        scratch.clear()
        let job = UncheckedBox((spec, args, connection, ReplyWriter(buffer: scratch, protocolVersion: 2, countsErrors: false)))
        let locksHeld = !locking
        let body: @Sendable (Shard) -> Void = { shard in
            let (spec, args, conn, reply) = job.value
            let suppressed = shard.context.effectsSuppressed
            shard.context.effectsSuppressed = true
            _ = shard.server.extensions.modules.run(on: shard, spec, conn, args, reply, locksHeld: locksHeld)
            shard.context.effectsSuppressed = suppressed
        }
        if locking {
            let finished = ReplayDone()
            shard.post(.run { s in
                body(s)
                finished.flag.store(true, ordering: .releasing)
            })
            while !finished.flag.load(ordering: .acquiring) { usleep(50) }
        } else {
            body(shard)
        }
        return nil
    }

    private func encodedLength(_ args: [Bytes]) -> Int {
        args.reduce(String(args.count).utf8.count + 3) { $0 + String($1.count).utf8.count + 3 + $1.count + 2 }
    }
}

/// Set by a shard once it ran a module command for the replay.
private final class ReplayDone: Sendable {
    let flag = Atomic<Bool>(false)
}

func readWholeFile(_ path: String) throws -> [UInt8] {
    let fd = try FileDescriptor.open(path, .readOnly, options: [.closeOnExec])
    defer { try? fd.close() }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let n = try chunk.withUnsafeMutableBytes { try fd.read(into: $0) }
        if n == 0 { break }
        out.append(contentsOf: chunk[0..<n])
    }
    return out
}

extension String {
    init(decodingFile path: String) throws {
        self = String(decoding: try readWholeFile(path), as: UTF8.self)
    }

    func trimmingSuffix(_ suffix: Character) -> String {
        var s = self
        while s.count > 1 && s.last == suffix { s.removeLast() }
        return s
    }
}
