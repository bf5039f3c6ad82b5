import CAllocator
import CUring
import Keyspace
import Logging
import Persistence
import RESP
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The server's RDB file: loading it at start, SAVE, BGSAVE, the `save` points, the save
/// at shutdown, and what INFO persistence, LASTSAVE and -MISCONF report of them. One
/// snapshot runs at a time (Snapshot.swift says how one is written).
///
/// Threads: `save` runs on the shard thread of the client that asked and writes on it;
/// `backgroundSave` begins on the asking thread and writes on a thread of its own; `cron`
/// and `saveAtShutdown` run on the main thread; `load` on the main thread before any
/// shard runs. Invariants: `state.running` is set exactly while a snapshot is being
/// written, under `state`'s lock; `refusingWrites` mirrors "the last save failed, save
/// points are set and stop-writes-on-bgsave-error is yes", recomputed whenever one of
/// those changes.
final class SnapshotService: @unchecked Sendable {
    struct State {
        var running: Snapshot?
        /// What the running (or claimed: between its claim and its instant) snapshot is
        /// for; nil when none runs.
        var purpose: Purpose?
        var runningInBackground = false
        /// Unix seconds of the last successful save (the start time until one).
        var lastSave: Int64
        var lastStatusOK = true
        var lastDurationSeconds = -1
        var lastAttempt: Int64 = 0
        /// BGSAVE SCHEDULE while the append-only file was being rewritten.
        var scheduled = false
        var saves = 0
        /// The dirty counters' sum as of the last successful save's instant.
        var dirtyAtLastSave = 0
        var loadedKeys = 0
        var expiredOnLoad = 0
    }
    let state: Mutex<State>
    /// Write commands (and PING) answer -MISCONF while set.
    let refusingWrites = Atomic<Bool>(false)
    private unowned let server: Server

    static let misconf = "MISCONF Berth is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Berth logs for details about the RDB error."

    init(server: Server) {
        self.server = server
        state = Mutex(State(lastSave: server.startTime / 1000))
    }

    var path: String {
        let dir = server.config.get("dir")
        let name = server.config.get("dbfilename")
        return name.hasPrefix("/") ? name : (dir.hasSuffix("/") ? dir + name : dir + "/" + name)
    }

    var isRunning: Bool { state.withLock { $0.purpose != nil } }

    // MARK: saving

    /// What a snapshot is for: the RDB file, or the append-only file's new base.
    enum Purpose { case rdb, aofRewrite }

    /// SAVE: writes the file now, on the calling shard thread; nil on success, else the
    /// error reply.
    func save(on shard: Shard) -> String? {
        guard let snapshot = start(section: shard.section, policy: .refuseWhenBusy, purpose: .rdb, background: false) else {
            return refusal(.rdb)
        }
        return write(snapshot, section: shard.section) ? nil : "ERR"
    }

    /// BGSAVE: begins the snapshot at this instant and writes it on its own thread; nil
    /// when it started, else the error reply.
    func backgroundSave(on section: LockSection, policy: LockWaitPolicy = .refuseWhenBusy) -> String? {
        guard let snapshot = start(section: section, policy: policy, purpose: .rdb, background: true) else {
            return refusal(.rdb)
        }
        server.log.notice("Background saving started")
        let thread = spawnThread { [self] in
            berth_lower_thread_priority()
            if write(snapshot, section: server.offShardSection) {
                server.log.notice("Background saving terminated with success")
            }
        }
        pthread_detach(thread)
        return nil
    }

    /// BGREWRITEAOF (and the automatic rewrite, and CONFIG SET appendonly yes): the
    /// append-only file's new base is a snapshot of this instant, and the incremental file
    /// that follows it starts at the same instant (`aof.rewriteBegins`, under every shard
    /// lock). Nil when it started, else the error reply.
    func backgroundRewrite(_ aof: AppendOnlyFile, on section: LockSection, policy: LockWaitPolicy = .refuseWhenBusy,
                           attaching: Bool = false) -> String? {
        var base: AppendOnlyFile.RewriteTarget?
        guard let snapshot = start(section: section, policy: policy, purpose: .aofRewrite, background: true, atInstant: {
            // Turned on at run time: the file follows the stream from this very instant.
            if attaching { self.server.attach(aof) }
            base = aof.rewriteBegins(at: self.server.effects.appended)
        }) else {
            return refusal(.aofRewrite)
        }
        server.log.notice("Background append only file rewriting started")
        let target = base!
        let thread = spawnThread { [self] in
            berth_lower_thread_priority()
            let failure = writeFile(snapshot, section: server.offShardSection, path: target.path, aofBase: true)
            finish(snapshot)
            aof.rewriteEnded(target, failure: failure)
        }
        pthread_detach(thread)
        return nil
    }

    /// The reply when a snapshot cannot start: one is running (or a script is busy).
    private func refusal(_ purpose: Purpose) -> String {
        guard let running = state.withLock({ $0.purpose }) else { return "BUSY Berth is busy running a script." }
        switch (purpose, running) {
        case (.rdb, .rdb): return "ERR Background save already in progress"
        case (.rdb, .aofRewrite):
            return "ERR Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible."
        case (.aofRewrite, .aofRewrite): return "ERR Background append only file rewriting already in progress"
        case (.aofRewrite, .rdb): return "ERR Background save in progress"
        }
    }

    /// At shutdown, after the shards stopped (nothing can change any more): the last save.
    func saveAtShutdown() -> Bool {
        server.log.notice("Saving the final RDB snapshot before exiting.")
        while isRunning { usleep(10_000) }  // a BGSAVE still writing finishes first
        guard let snapshot = start(section: server.offShardSection, policy: .outlastBusy, purpose: .rdb, background: false) else {
            return false
        }
        return write(snapshot, section: server.offShardSection)
    }

    /// A synchronous snapshot into `path` (the append-only file's first base, at start or
    /// when CONFIG SET turns it on); nil on success, else why not.
    func writeNow(to path: String, aofBase: Bool, atInstant: @escaping () -> Void = {}) -> String? {
        while isRunning { usleep(10_000) }
        guard let snapshot = start(section: server.offShardSection, policy: .outlastBusy, purpose: .aofRewrite,
                                   background: false, atInstant: atInstant) else { return "a snapshot is already running" }
        let failure = writeFile(snapshot, section: server.offShardSection, path: path, aofBase: aofBase)
        finish(snapshot)
        return failure
    }

    /// BGSAVE SCHEDULE while a rewrite runs: the save starts when it ends.
    func scheduleSave() { state.withLock { $0.scheduled = true } }

    /// The one running (or claimed) snapshot's purpose, nil when none runs.
    var runningPurpose: Purpose? { state.withLock { $0.purpose } }

    private func start(section: LockSection, policy: LockWaitPolicy, purpose: Purpose, background: Bool,
                       atInstant: () -> Void = {}) -> Snapshot? {
        // Claimed before the instant, so two savers never both begin.
        let claimed = state.withLock { s -> Bool in
            guard s.purpose == nil else { return false }
            s.purpose = purpose
            return true
        }
        guard claimed else { return nil }
        guard let snapshot = Snapshot.begin(server, section: section, policy: policy, atInstant: atInstant) else {
            state.withLock { $0.purpose = nil }
            return nil
        }
        state.withLock { s in
            s.running = snapshot
            s.runningInBackground = background
            if purpose == .rdb { s.lastAttempt = ShardStore.nowMilliseconds() / 1000 }
        }
        return snapshot
    }

    /// The snapshot is no longer running.
    private func finish(_ snapshot: Snapshot) {
        state.withLock { s in
            s.running = nil
            s.purpose = nil
        }
    }

    /// Writes the snapshot into `path`; nil on success, else the failure's log line.
    /// Throws nothing: a cancelled snapshot (FLUSHALL) reports `Snapshot.cancelledMessage`.
    private func writeFile(_ snapshot: Snapshot, section: LockSection, path: String, aofBase: Bool) -> String? {
        let file: RDBFileWriter
        do {
            file = try RDBFileWriter(path: path, checksum: server.config.get("rdbchecksum") == "yes")
        } catch {
            return "Failed opening the temp RDB file in \(RDBFileWriter.directoryName(of: path)) for saving: \(error)"
        }
        do {
            try snapshot.write(to: file, aux: auxFields(aofBase: aofBase), section: section)
            return nil
        } catch is Snapshot.Cancelled {
            file.abandon()
            return Snapshot.cancelledMessage
        } catch {
            file.abandon()
            return "Write error saving DB on disk: \(error)"
        }
    }

    /// Writes the RDB file; records the outcome. True on success.
    private func write(_ snapshot: Snapshot, section: LockSection) -> Bool {
        let path = self.path
        let failure = writeFile(snapshot, section: section, path: path, aofBase: false)
        finish(snapshot)
        if failure == Snapshot.cancelledMessage {
            server.log.notice("Background saving stopped: the data set was flushed")
            return false
        }
        let seconds = Int((ShardStore.nowMilliseconds() - snapshot.startedAt) / 1000)
        state.withLock { s in
            s.lastDurationSeconds = seconds
            s.lastStatusOK = failure == nil
            if failure == nil {
                s.lastSave = ShardStore.nowMilliseconds() / 1000
                s.dirtyAtLastSave = snapshot.dirtyAtStart
                s.saves += 1
            }
        }
        updateWriteRefusal()
        if let failure {
            server.log.warning("\(failure)")
            return false
        }
        server.log.notice("DB saved on disk (\(snapshot.keysWritten) keys, \(path))")
        return true
    }

    private struct SaveFailure: Error {
        let message: String
        init(_ m: String) { message = m }
    }

    private func auxFields(aofBase: Bool) -> [(String, Bytes)] {
        [("redis-ver", Server.redisCompatibleVersion), ("redis-bits", "64"),
         ("ctime", String(ShardStore.nowMilliseconds() / 1000)), ("used-mem", String(berth_allocated_bytes())),
         ("aof-base", aofBase ? "1" : "0"), ("berth-ver", Server.version)].map { ($0.0, Bytes($0.1)) }
    }

    /// FLUSHALL: a snapshot being written holds data that is gone; it stops (the file on
    /// disk stays as it was), as Redis kills its saving child. Call holding no shard lock.
    func cancelRunning() {
        guard let running = state.withLock({ $0.purpose == .rdb ? $0.running : nil }) else { return }
        running.cancelled.store(true, ordering: .relaxed)
        while isRunning { usleep(1000) }
    }

    /// FLUSHALL with save points set: the empty data set is saved at once, as Redis does.
    func saveAfterFlush(on shard: Shard) {
        cancelRunning()
        guard !savePoints.isEmpty else { return }
        if let error = save(on: shard) { server.log.warning("Saving after FLUSHALL failed: \(error)") }
    }

    // MARK: save points

    /// The `save` option's (seconds, changes) pairs; empty when saving is off.
    var savePoints: [(seconds: Int, changes: Int)] {
        let words = server.config.get("save").split(separator: " ").compactMap { Int($0) }
        return stride(from: 0, to: words.count - 1, by: 2).map { (words[$0], words[$0 + 1]) }
    }

    /// Changes made since the last successful save (INFO rdb_changes_since_last_save).
    func changesSinceLastSave(dirtyNow: Int) -> Int {
        max(0, dirtyNow - state.withLock { $0.dirtyAtLastSave })
    }

    /// Main thread, about once a second: starts a BGSAVE when a save point is reached, as
    /// Redis's serverCron does (after a failed one, only every five seconds).
    func cron(dirtyNow: Int) {
        let points = savePoints
        guard !points.isEmpty || state.withLock({ $0.scheduled }) else { return }
        let now = ShardStore.nowMilliseconds() / 1000
        let s = state.withLock { $0 }
        guard s.purpose == nil else { return }
        if s.scheduled {
            state.withLock { $0.scheduled = false }
            _ = backgroundSave(on: server.offShardSection, policy: .outlastBusy)
            return
        }
        let changes = max(0, dirtyNow - s.dirtyAtLastSave)
        for p in points where changes >= p.changes && now - s.lastSave > Int64(p.seconds)
            && (s.lastStatusOK || now - s.lastAttempt > 5) {
            server.log.notice("\(p.changes) changes in \(p.seconds) seconds. Saving...")
            if let e = backgroundSave(on: server.offShardSection, policy: .outlastBusy) {
                server.log.warning("Background save could not start: \(e)")
            }
            return
        }
    }

    /// Recomputes whether writes are refused after a failed save (also after CONFIG SET).
    func updateWriteRefusal() {
        let failed = !state.withLock { $0.lastStatusOK }
        refusingWrites.store(failed && !savePoints.isEmpty && server.config.get("stop-writes-on-bgsave-error") == "yes",
                             ordering: .relaxed)
        server.updateDiskError()
    }

    // MARK: reporting

    func lastSaveTime() -> Int64 { state.withLock { $0.lastSave } }

    func infoFields(dirtyNow: Int) -> [(String, String)] {
        let s = state.withLock { $0 }
        let now = ShardStore.nowMilliseconds()
        let current = s.running.map { now - $0.startedAt }
        return [
            ("current_save_keys_processed", String(s.running?.keysWritten ?? 0)),
            ("current_save_keys_total", String(s.running?.keysAtStart ?? 0)),
            ("rdb_changes_since_last_save", String(max(0, dirtyNow - s.dirtyAtLastSave))),
            ("rdb_bgsave_in_progress", s.purpose == .rdb && s.runningInBackground ? "1" : "0"),
            ("rdb_last_save_time", String(s.lastSave)),
            ("rdb_last_bgsave_status", s.lastStatusOK ? "ok" : "err"),
            ("rdb_last_bgsave_time_sec", String(s.lastDurationSeconds)),
            ("rdb_current_bgsave_time_sec", current.map { String($0 / 1000) } ?? "-1"),
            ("rdb_saves", String(s.saves)),
            ("rdb_last_cow_size", "0"),
            ("rdb_last_load_keys_expired", String(s.expiredOnLoad)),
            ("rdb_last_load_keys_loaded", String(s.loadedKeys)),
        ]
    }
}
