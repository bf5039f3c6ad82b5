import Keyspace
import Persistence
import RESP
import Synchronization
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

// The append-only file: the effect stream, written down.
//
// Every write's effects reach the stream in one total order (Keyspace/Effects.swift);
// this consumer writes them, as RESP commands with a SELECT wherever the database
// changes, into the current incremental file of Redis 7's multi-part AOF (a base
// snapshot, incremental files, a manifest: Persistence/AOFManifest.swift). Replaying
// base then increments rebuilds the keyspace (AOFLoading.swift).
//
// Durability follows `appendfsync`:
//   always   - a client's reply leaves only once every effect appended before it is on
//              disk. A shard holds the replies of its pass (Shard.holdReplies) and, before
//              it waits for events again, drains the stream itself and fsyncs (`waitDurable`):
//              whichever shard drains writes every shard's effects of that moment, so one
//              fsync covers them all (group commit), and the others find their effects
//              already durable. A failed write or fsync ends the process, as Redis does:
//              nothing unlogged may be acknowledged.
//   everysec - written as drained (every 10 ms by the main thread), fsynced once a second.
//   no       - written as drained; the kernel decides when.
// A write that fails under everysec/no keeps its bytes to retry, truncates whatever part
// reached the file, and makes writes answer -MISCONF until a retry succeeds.
//
// A rewrite (BGREWRITEAOF) is a snapshot: at its instant, under every shard lock, the
// stream position is noted (`rewriteBegins`); effects from that position on go to a new
// incremental file, and the manifest names it after the old ones, so the directory
// stays complete while the new base is written. When it is written, the manifest names
// only the new base and the incremental files from the switch on; the old files go.
//
// Threads: `consume` runs on whichever thread drains the stream, one at a time; the
// rewrite's calls on the snapshot's thread; `waitDurable` on shard threads; INFO reads
// from anywhere. Invariants: everything in `State` is changed under `state`'s lock;
// `durable` only grows, and counts effects fsynced (always), written (no, everysec);
// `fsynced` counts effects known to be on disk.
final class AppendOnlyFile: EffectConsumer, @unchecked Sendable {
    enum FsyncPolicy: Int { case always, everysec, no }

    private struct State {
        var manifest: AOFManifest
        /// The incremental file being appended to; nil before the first (while the first
        /// base is being made).
        var file: FileDescriptor?
        var fileSize = 0
        var baseSize = 0
        /// Bytes of the incremental files other than the current one.
        var olderIncrementalBytes = 0
        /// The database the current file's reader is in; -1 at a file's start.
        var db = -1
        /// A rewrite's switch: effects from `at` on go to incremental file `sequence`.
        var pendingSwitch: (at: UInt64, sequence: Int)?
        /// Encoded effects a failed write left to retry.
        var unwritten: [UInt8] = []
        /// Effects up to here are in `unwritten` or the file.
        var encodedUpTo: UInt64 = 0
        var lastFsync: Int64 = 0
        var writeError: Errno?
        var rewriteInProgress = false
        var rewriteScheduled = false
        var lastRewriteOK = true
        var lastRewriteSeconds = -1
        var rewriteStarted: Int64 = 0
        var rewrites = 0
        /// incr+base size after the last rewrite (or at start): the auto rewrite's basis.
        var sizeAtLastRewrite = 0
    }

    private let state: Mutex<State>
    private unowned let server: Server
    /// dir/appenddirname.
    let directory: String
    /// appendfilename: the files' common prefix.
    let prefix: String
    let policy: Atomic<Int>
    /// Effects known to be on disk (WAITAOF).
    let fsynced = Atomic<UInt64>(0)
    /// Set while a write error stands (write commands answer -MISCONF).
    let refusingWrites = Atomic<Bool>(false)

    init(server: Server, directory: String, prefix: String, manifest: AOFManifest) {
        self.server = server
        self.directory = directory
        self.prefix = prefix
        policy = Atomic(AppendOnlyFile.policy(named: server.config.get("appendfsync")).rawValue)
        state = Mutex(State(manifest: manifest))
    }

    static func policy(named name: String) -> FsyncPolicy {
        switch name {
        case "always": return .always
        case "no": return .no
        default: return .everysec
        }
    }

    var fsyncPolicy: FsyncPolicy { FsyncPolicy(rawValue: policy.load(ordering: .relaxed))! }

    func path(_ name: String) -> String { directory + "/" + name }

    // MARK: opening

    var currentManifest: AOFManifest { state.withLock { $0.manifest } }

    /// At start, before appending: the manifest after the first base was made.
    func adopt(_ manifest: AOFManifest) { state.withLock { $0.manifest = manifest } }

    /// At start, after loading: appends to the manifest's last incremental file, or
    /// starts one. Throws what the log should say.
    func openForAppending() throws {
        try state.withLock { s in
            if let last = s.manifest.incrementals.last {
                s.file = try FileDescriptor.open(path(last.name), .writeOnly, options: [.append, .create, .closeOnExec],
                                                 permissions: [.ownerReadWrite, .groupRead, .otherRead])
                s.fileSize = fileSize(last.name)
            } else {
                try startIncremental(&s, sequence: s.manifest.nextIncrementalSequence)
            }
            s.baseSize = s.manifest.base.map { fileSize($0.name) } ?? 0
            s.olderIncrementalBytes = s.manifest.incrementals.dropLast().reduce(0) { $0 + fileSize($1.name) }
            s.sizeAtLastRewrite = s.baseSize + s.olderIncrementalBytes + s.fileSize
        }
    }

    private func fileSize(_ name: String) -> Int {
        var st = stat()
        return stat(path(name), &st) == 0 ? Int(st.st_size) : 0
    }

    /// Opens incremental file `sequence` (closing the current one, fsynced) and names it
    /// in the manifest.
    private func startIncremental(_ s: inout State, sequence: Int) throws {
        if let old = s.file {
            try? old.sync()
            try? old.close()
            s.olderIncrementalBytes += s.fileSize
        }
        let name = AOFManifest.incrementalName(prefix, sequence)
        s.file = try FileDescriptor.open(path(name), .writeOnly, options: [.append, .create, .truncate, .closeOnExec],
                                         permissions: [.ownerReadWrite, .groupRead, .otherRead])
        s.fileSize = 0
        s.db = -1
        s.manifest.incrementals.append(AOFFile(name: name, sequence: sequence, kind: .incremental))
        try writeManifest(s.manifest)
    }

    /// Replaces the manifest atomically: written beside it, fsynced, renamed, the
    /// directory fsynced.
    func writeManifest(_ manifest: AOFManifest) throws {
        let final = path(AOFManifest.manifestName(prefix))
        let temporary = path("temp-" + AOFManifest.manifestName(prefix))
        let fd = try FileDescriptor.open(temporary, .writeOnly, options: [.create, .truncate, .closeOnExec],
                                         permissions: [.ownerReadWrite, .groupRead, .otherRead])
        do {
            _ = try Array(manifest.render().utf8).withUnsafeBytes { try fd.writeAll($0) }
            try fd.sync()
            try fd.close()
        } catch {
            try? fd.close()
            throw error
        }
        guard rename(temporary, final) == 0 else { throw Errno(rawValue: errno) }
        RDBFileWriter.syncDirectory(directory)
    }

    // MARK: writing

    func consume(_ effects: [Effect], firstSequence: UInt64) {
        let policy = fsyncPolicy
        let end = firstSequence + UInt64(effects.count)
        let failure: Errno? = state.withLock { s in
            var from = 0
            if let sw = s.pendingSwitch, sw.at < end {
                // Up to the rewrite's instant into the old file, the rest into the new one.
                let split = Int(max(sw.at, firstSequence) - firstSequence)
                if s.file != nil { encode(effects[0..<split], into: &s) }
                if let error = writeOut(&s) { return error }
                do { try startIncremental(&s, sequence: sw.sequence) } catch {
                    return (error as? Errno) ?? .ioError
                }
                s.pendingSwitch = nil
                from = split
            }
            guard s.file != nil else { return nil }  // before the first base: the base will hold these
            encode(effects[from...], into: &s)
            s.encodedUpTo = end
            if let error = writeOut(&s) { return error }
            let now = ShardStore.nowMilliseconds()
            if policy == .always || (policy == .everysec && now - s.lastFsync >= 1000) {
                do { try s.file?.dataSync() } catch { return (error as? Errno) ?? .ioError }
                s.lastFsync = now
                fsynced.store(end, ordering: .releasing)
            }
            return nil
        }
        if let failure {
            noteWriteFailure(failure, policy: policy)
            return
        }
        if refusingWrites.load(ordering: .relaxed) { noteWriteRecovered() }
        server.durability.advance(to: end)
    }

    /// Appends `effects` as RESP, with SELECT where the database changes.
    private func encode(_ effects: ArraySlice<Effect>, into s: inout State) {
        guard !effects.isEmpty else { return }
        let out = IOBuffer(capacity: 256)
        EffectLog.encode(effects, into: ReplyWriter(buffer: out, protocolVersion: 2, countsErrors: false), db: &s.db)
        s.unwritten.append(contentsOf: out.readableBytes)
    }

    /// Writes `unwritten` to the file. On failure, whatever part reached the file is cut
    /// off again (a replay must never meet half a command) and the bytes stay to retry.
    private func writeOut(_ s: inout State) -> Errno? {
        guard let file = s.file, !s.unwritten.isEmpty else { return nil }
        var done = 0
        let failure: Errno? = s.unwritten.withUnsafeBytes { raw in
            while done < raw.count {
                switch file.writeSome(UnsafeRawBufferPointer(rebasing: raw[done...])) {
                case .success(let n): done += n
                case .failure(let e): return e
                }
            }
            return nil
        }
        if let failure {
            if done > 0 { _ = ftruncate(file.rawValue, off_t(s.fileSize)) }
            s.writeError = failure
            return failure
        }
        s.fileSize += done
        s.unwritten.removeAll(keepingCapacity: s.unwritten.count <= 1 << 20)
        s.writeError = nil
        return nil
    }

    private func noteWriteFailure(_ error: Errno, policy: FsyncPolicy) {
        if policy == .always {
            server.log.critical("Can't recover from AOF write error when the AOF fsync policy is 'always' (\(error)). Exiting...")
            exit(1)
        }
        if !refusingWrites.load(ordering: .relaxed) {
            server.log.warning("Error writing to the AOF file: \(error)")
        }
        refusingWrites.store(true, ordering: .relaxed)
        server.updateDiskError()
    }

    private func noteWriteRecovered() {
        server.log.warning("AOF write error looks solved, Berth can write again.")
        refusingWrites.store(false, ordering: .relaxed)
        server.updateDiskError()
    }

    var writeErrorText: String { state.withLock { s in s.writeError.map { "\($0)" } ?? "unknown error" } }

    /// appendfsync always: returns once every effect appended up to now is on disk. A
    /// shard thread calls it holding no shard lock, before its held replies go out.
    func waitDurable() {
        let target = server.effects.appended
        while server.durability.durable.load(ordering: .acquiring) < target && server.durability.holding.load(ordering: .relaxed) {
            server.effects.drain()
        }
    }

    /// WAITAOF: everything appended so far written and fsynced, now; false on an error.
    func syncNow() -> Bool {
        server.effects.drain()
        return state.withLock { s in
            guard writeOut(&s) == nil, let file = s.file, (try? file.dataSync()) != nil else { return false }
            fsynced.store(s.encodedUpTo, ordering: .releasing)
            s.lastFsync = ShardStore.nowMilliseconds()
            return true
        }
    }

    /// Main thread, every 100 ms while a write error stands: writes what failed again (no
    /// new effect may come to trigger it: writes are refused meanwhile).
    func retryFailedWrite() {
        guard refusingWrites.load(ordering: .relaxed) else { return }
        let failed = state.withLock { s -> Bool in writeOut(&s) != nil }
        if !failed {
            noteWriteRecovered()
            server.durability.advance(to: state.withLock { $0.encodedUpTo })
        }
    }

    /// everysec: the main thread's once-a-second fsync even when nothing new was drained
    /// (the last second's writes may not have been fsynced yet).
    func fsyncIfDue() {
        guard fsyncPolicy == .everysec else { return }
        state.withLock { s in
            let now = ShardStore.nowMilliseconds()
            guard now - s.lastFsync >= 1000, let file = s.file else { return }
            let upTo = s.encodedUpTo
            if (try? file.dataSync()) != nil { fsynced.store(upTo, ordering: .releasing) }
            s.lastFsync = now
        }
    }

    /// At shutdown, after the last drain.
    func close() {
        state.withLock { s in
            _ = writeOut(&s)
            if let f = s.file {
                if (try? f.sync()) != nil { fsynced.store(s.encodedUpTo, ordering: .releasing) }
                try? f.close()
            }
            s.file = nil
        }
    }

    // MARK: rewriting

    struct RewriteTarget {
        let path: String
        let base: AOFFile
        /// The incremental file that starts at the rewrite's instant.
        let firstIncremental: Int
    }

    /// Under every shard lock, at the rewrite snapshot's instant: effects from `position`
    /// on go to a new incremental file.
    func rewriteBegins(at position: UInt64) -> RewriteTarget {
        state.withLock { s in
            let incremental = s.pendingSwitch?.sequence ?? s.manifest.nextIncrementalSequence
            s.pendingSwitch = (position, incremental)
            s.rewriteInProgress = true
            s.rewriteScheduled = false
            s.rewriteStarted = ShardStore.nowMilliseconds()
            let base = AOFFile(name: AOFManifest.baseName(prefix, s.manifest.nextBaseSequence, rdb: true),
                               sequence: s.manifest.nextBaseSequence, kind: .base)
            return RewriteTarget(path: path(base.name), base: base, firstIncremental: incremental)
        }
    }

    /// On the snapshot's thread, the new base written (or not): the manifest moves to it
    /// and the files it replaces go.
    func rewriteEnded(_ target: RewriteTarget, failure: String?) {
        // Everything before the instant reaches the old file, and the switch happens even
        // if nothing was written since the instant.
        server.effects.drain()
        var obsolete: [AOFFile] = []
        let outcome: String? = state.withLock { s in
            if let sw = s.pendingSwitch {
                do { try startIncremental(&s, sequence: sw.sequence) } catch { return "\(error)" }
                s.pendingSwitch = nil
            }
            s.rewriteInProgress = false
            s.lastRewriteSeconds = Int((ShardStore.nowMilliseconds() - s.rewriteStarted) / 1000)
            if let failure {
                s.lastRewriteOK = false
                return failure
            }
            var next = s.manifest
            obsolete = (next.base.map { [$0] } ?? []) + next.incrementals.filter { $0.sequence < target.firstIncremental }
            next.base = target.base
            next.incrementals = next.incrementals.filter { $0.sequence >= target.firstIncremental }
            do { try writeManifest(next) } catch { return "\(error)" }
            s.manifest = next
            s.baseSize = fileSize(target.base.name)
            s.olderIncrementalBytes = next.incrementals.dropLast().reduce(0) { $0 + fileSize($1.name) }
            s.sizeAtLastRewrite = s.baseSize + s.olderIncrementalBytes + s.fileSize
            s.lastRewriteOK = true
            s.rewrites += 1
            return nil
        }
        if let outcome {
            server.log.warning("Background AOF rewrite failed: \(outcome)")
            unlink(target.path)
            return
        }
        for f in obsolete { unlink(path(f.name)) }
        server.log.notice("Background AOF rewrite finished successfully")
    }

    /// BGREWRITEAOF while a snapshot runs: it starts when that one ends.
    func scheduleRewrite() { state.withLock { $0.rewriteScheduled = true } }

    /// Main thread, about once a second: a scheduled rewrite, or an automatic one once the
    /// files grew by auto-aof-rewrite-percentage over their size after the last rewrite
    /// and past auto-aof-rewrite-min-size.
    func cron() {
        let (scheduled, size, basis, running) = state.withLock { s in
            (s.rewriteScheduled, s.baseSize + s.olderIncrementalBytes + s.fileSize, s.sizeAtLastRewrite, s.rewriteInProgress)
        }
        guard !running, !server.snapshots.isRunning else { return }
        let percentage = server.config.int("auto-aof-rewrite-percentage")
        let minimum = server.config.int("auto-aof-rewrite-min-size")
        var due = scheduled
        if !due && percentage > 0 && size > minimum {
            let growth = basis > 0 ? (size - basis) * 100 / basis : Int.max
            if growth >= percentage {
                server.log.notice("Starting automatic rewriting of AOF on \(growth)% growth")
                due = true
            }
        }
        if due { _ = server.snapshots.backgroundRewrite(self, on: server.offShardSection, policy: .outlastBusy) }
    }

    // MARK: reporting

    func infoFields() -> [(String, String)] {
        let s = state.withLock { $0 }
        let now = ShardStore.nowMilliseconds()
        return [
            ("aof_enabled", "1"), ("aof_rewrite_in_progress", s.rewriteInProgress ? "1" : "0"),
            ("aof_rewrite_scheduled", s.rewriteScheduled ? "1" : "0"),
            ("aof_last_rewrite_time_sec", String(s.lastRewriteSeconds)),
            ("aof_current_rewrite_time_sec", s.rewriteInProgress ? String((now - s.rewriteStarted) / 1000) : "-1"),
            ("aof_last_bgrewrite_status", s.lastRewriteOK ? "ok" : "err"), ("aof_rewrites", String(s.rewrites)),
            ("aof_rewrites_consecutive_failures", s.lastRewriteOK ? "0" : "1"),
            ("aof_last_write_status", s.writeError == nil ? "ok" : "err"), ("aof_last_cow_size", "0"),
            ("module_fork_in_progress", "0"), ("module_fork_last_cow_size", "0"),
            ("aof_current_size", String(s.baseSize + s.olderIncrementalBytes + s.fileSize)),
            ("aof_base_size", String(s.baseSize)), ("aof_pending_rewrite", s.rewriteScheduled ? "1" : "0"),
            ("aof_buffer_length", String(s.unwritten.count)), ("aof_pending_bio_fsync", "0"), ("aof_delayed_fsync", "0"),
        ]
    }
}

extension FileDescriptor {
    /// One write(2): how many bytes it took, or its errno (EINTR retried).
    func writeSome(_ bytes: UnsafeRawBufferPointer) -> Result<Int, Errno> {
        while true {
            let n = Glibc.write(rawValue, bytes.baseAddress, bytes.count)
            if n >= 0 { return .success(n) }
            let e = Errno(rawValue: errno)
            if e != .interrupted { return .failure(e) }
        }
    }
}
