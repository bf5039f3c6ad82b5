import Commands
import Keyspace
import RESP
#if canImport(Glibc)
import Glibc
#endif

/// How a shard runs the commands its connections send.
///
/// Each command is parsed from the connection's input, checked (known name, arity,
/// authentication), queued if the client is in MULTI, and otherwise run. A data command
/// runs on this thread under the locks of the shards owning its keys, taken in
/// ascending order: one lock for a single-key command, several for MSET or RENAME
/// across shards, all of them for KEYS or FLUSHALL and for EXEC of a transaction
/// touching them. So no client ever sees half of a multi-key command, and two
/// multi-shard commands never deadlock. Replies are appended to the connection's output
/// in request order; nothing is sent until the whole batch read has been processed.
extension Shard {
    /// With `keepingLocks`, a plain data command's locks may stay kept after the batch, for
    /// the next connection's batch in the same event-loop pass (BatchLocks.swift).
    func processInput(_ conn: Connection, keepingLocks: Bool = false) {
        if conn.suspended {
            // A blocked or paused client's input waits for it, within the same limit.
            closeIfOverQueryBufferLimit(conn)
            return
        }
        let outer = activeConnection
        activeConnection = conn
        defer {
            if !keepingLocks { section.releaseKept() }
            activeConnection = outer
        }
        // One clock reading serves the whole batch read from the socket, as a time snapshot
        // (and one reading of used memory, MemoryLimit.swift).
        batchTime = ShardStore.nowMilliseconds()
        memoryCheckedInBatch = false
        clockBeforeCommand = clock.microseconds()
        conn.parser.maxBulkLength = server.config.maxBulkLength.load(ordering: .relaxed)
        var window = PrefetchWindow()
        while !conn.closing && !conn.suspended && !conn.closeAfterFlush {
            switch conn.parser.next(conn.input) {
            case .needMore:
                // The defer releases the batch's locks (or keeps them); `kill` releases
                // them itself if the buffered input is over the limit.
                closeIfOverQueryBufferLimit(conn)
                return
            case .protocolError(let message):
                section.releaseKept()
                ReplyWriter(buffer: conn.output, protocolVersion: conn.protocolVersion).error("ERR \(message)")
                conn.closeAfterFlush = true
                return
            case .command(let args):
                prefetchAhead(conn, &window)
                let before = conn.output.writerIndex
                executeKeepingLocks(conn, args)
                stats.netOutputBytes += max(0, conn.output.writerIndex - before)
            }
        }
    }

    /// Closes a client whose unprocessed input passed client-query-buffer-limit, as Redis
    /// does whether or not the client is blocked.
    private func closeIfOverQueryBufferLimit(_ conn: Connection) {
        guard conn.input.readableCount > server.config.queryBufferLimit.load(ordering: .relaxed) else { return }
        server.log.warning("Closing client that reached max query buffer length: id=\(conn.id) addr=\(conn.peer)")
        stats.queryLimitDisconnections += 1
        kill(conn)
    }

    func writer(for conn: Connection) -> ReplyWriter {
        if conn.repliesOff || conn.skipReplies > 0 {
            discard.clear()
            return ReplyWriter(buffer: discard, protocolVersion: conn.protocolVersion)
        }
        return ReplyWriter(buffer: conn.output, protocolVersion: conn.protocolVersion)
    }

    /// The writer for a push to `conn` in place of `reply`: the connection's own output when
    /// CLIENT REPLY OFF/SKIP routed `reply` to the discard buffer, `reply` otherwise (a
    /// transaction's or script's reply keeps its pushes in order).
    func pushWriter(for conn: Connection, instead reply: ReplyWriter) -> ReplyWriter {
        guard conn.repliesOff || conn.skipReplies > 0, reply.buffer === discard else { return reply }
        return ReplyWriter(buffer: conn.output, protocolVersion: conn.protocolVersion)
    }

    /// Runs one command outside an input batch.
    func execute(_ conn: Connection, _ args: [Bytes]) {
        let outer = activeConnection
        activeConnection = conn
        memoryCheckedInBatch = false
        clockBeforeCommand = clock.microseconds()
        executeKeepingLocks(conn, args)
        section.releaseKept()
        activeConnection = outer
    }

    /// Runs one command of an input batch; a plain data command may leave its shard locks
    /// kept for the next one (BatchLocks.swift).
    private func executeKeepingLocks(_ conn: Connection, _ args: [Bytes]) {
        // Pipelines repeat one name, so the last built-in command found is remembered by
        // the exact bytes the client sent. Built-in specs live as long as the server, so
        // the cache holds its spec unretained and lends it out without a retain and a
        // release per command.
        if let recent = recentCommand, recent.name == args[0] {
            recent.spec._withUnsafeGuaranteedRef { executeKeepingLocks(conn, args, $0) }
        } else if let spec = server.commands.lookup(args[0]) {
            recentCommand = (args[0], Unmanaged.passUnretained(spec))
            executeKeepingLocks(conn, args, spec)
        } else if let spec = server.extensions.modules.command(named: args[0]) {
            // MODULE UNLOAD can take a module's commands away: looked up every time.
            executeKeepingLocks(conn, args, spec)
        } else {
            section.releaseKept()
            rejectUnknownCommand(conn, args)
        }
    }

    private func executeKeepingLocks(_ conn: Connection, _ args: [Bytes], _ spec: CommandSpec) {
        if !section.kept.isEmpty && (!isPlainData(spec) || conn.transaction != nil) {
            section.releaseKept()
        }
        if pause.isActive, pause.holdsBack(spec, args, conn, scriptMayWrite: server.extensions.scripting.mayWrite), conn.authenticated {
            park(conn, args)
            return
        }
        stats.commandsProcessed += 1
        let reply = writer(for: conn)
        defer { if conn.skipReplies > 0 { conn.skipReplies -= 1 } }
        conn.lastCommand = spec.id
        conn.lastSubcommand = spec.subcommands.isEmpty || args.count < 2 ? nil : args[1].string.lowercased()
        guard spec.arityMatches(args.count), subcommandArityMatches(spec, args) else {
            reply.error(CommandError.wrongArity(Self.fullName(spec, args)).message)
            conn.transaction?.failed = true
            stats.rejectedCalls[rejectedStatID(spec, args)] += 1
            return
        }
        if !conn.authenticated && !spec.flags.contains(.noAuth) {
            reply.error("NOAUTH Authentication required.")
            conn.transaction?.failed = true
            stats.rejectedCalls[rejectedStatID(spec, args)] += 1
            return
        }
        if server.config.maxMemory.load(ordering: .relaxed) == 0 {
            outOfMemoryBeforeCommand = false  // a limit set before may have left it true
        } else if refusesForMemory(spec, conn) {
            stats.rejectedCalls[rejectedStatID(spec, args)] += 1
            if spec.name == "exec", conn.transaction != nil {
                conn.transaction = nil
                unwatchAll(conn)
                reply.error("EXECABORT Transaction discarded because of: \(Self.outOfMemory)")
            } else {
                conn.transaction?.failed = true
                reply.error(Self.outOfMemory)
            }
            return
        }
        if server.loading.load(ordering: .relaxed) && !spec.flags.contains(.loading) {
            reply.error("LOADING Berth is loading the dataset in memory")
            conn.transaction?.failed = true
            return
        }
        if server.diskError.load(ordering: .relaxed) != 0 && (spec.flags.contains(.write) || spec.name == "ping") {
            // As Redis: after a failed save with save points set, or a failed write to the
            // append-only file, writes (and PING, which monitoring uses to notice) are
            // refused until a save or write succeeds.
            reply.error(server.diskError.load(ordering: .relaxed) == 1 ? SnapshotService.misconf
                        : "MISCONF Errors writing to the AOF file: \(server.aof?.writeErrorText ?? "unknown error")")
            conn.transaction?.failed = true
            return
        }
        if server.scriptBusy.running.load(ordering: .relaxed) != 0, let busy = server.scriptBusy.refusal(spec, args) {
            // Inside MULTI a refused command dooms the transaction; a refused EXEC ends it,
            // as Redis answers both, so no half of a transaction runs around a busy script.
            if spec.name == "exec" && conn.transaction != nil {
                conn.transaction = nil
                unwatchAll(conn)
                reply.error("EXECABORT Transaction discarded because of: \(busy)")
            } else {
                conn.transaction?.failed = true
                reply.error(busy)
            }
            return
        }
        if conn.protocolVersion == 2 && conn.isSubscribed && !Shard.subscribedModeCommands.contains(spec.name) {
            reply.error("ERR Can't execute '\(Self.fullName(spec, args))': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context")
            return
        }
        if conn.transaction != nil && !spec.flags.contains(.transaction) {
            if spec.flags.contains(.noMulti) && !Self.clientSubcommandsInMulti(spec, args) {
                reply.error("ERR Command not allowed inside a transaction")
                conn.transaction?.failed = true
                return
            }
            conn.transaction!.queue.append((spec, args))
            reply.queued()
            return
        }
        let start = clockBeforeCommand
        let failed: Bool
        if spec.flags.contains(.module) {
            failed = server.extensions.modules.run(on: self, spec, conn, args, reply, locksHeld: false)
        } else if spec.flags.contains(.script) {
            feedMonitors(spec, conn, args)  // before the commands it runs, as Redis feeds EVAL
            failed = server.extensions.scripting.run(on: self, spec, conn, args, reply, locksHeld: false)
        } else if spec.flags.contains(.engine) {
            if server.moduleYieldGate.sectionHeld.load(ordering: .relaxed), !waitOutModuleSection(spec, args, reply) {
                return
            }
            failed = server.engineCommands[spec.id]!(self, conn, args, reply)
            // A PUBLISH reaches this shard's subscribers (the publisher too) after its reply.
            if !deferredMessages.isEmpty && !context.inTransaction { publishKeyspaceEvents() }
        } else {
            failed = runLocked(spec, args, conn, reply)
            if spec.flags.contains(.allShards) && !failed && spec.name == "flushall" {
                section.releaseKept()  // the save takes every shard lock
                server.snapshots.saveAfterFlush(on: self)
            }
        }
        if conn.blocked == nil { conn.commandsRun += 1 }  // a blocked one counts once it is served
        let end = clock.microseconds()
        clockBeforeCommand = end
        var reportedNow = true
        if let wait = conn.blocked?.operation.engineWait, wait.commandRan(spec.id, microseconds: end - start) {
            reportedNow = false  // the wait reports the command's time when it ends
        } else if conn.blocked != nil {
            // A blocking command is reported once it is unblocked, as Redis reports it.
            conn.blockedCommand = (args, end - start)
            reportedNow = false
        }
        record(CallRecord(spec, args, db: conn.db, microseconds: end - start, failed: failed,
                          slowlogCaller: reportedNow ? conn.caller : nil,
                          monitorPeer: spec.flags.contains(.script) ? nil : conn.peer))
    }

    /// An engine command takes no shard lock, so it would run beside a module operation
    /// that holds them all (ModuleYield.swift), where Redis runs nothing: it waits for
    /// this shard's lock instead. False when the operation announced busy meanwhile and
    /// the command got its -BUSY reply. Once busy is announced, the -BUSY check before has
    /// already let this command through (allowed while busy), and it does not wait: the
    /// operation may be serving this very shard from inside Yield.
    private func waitOutModuleSection(_ spec: CommandSpec, _ args: [Bytes], _ reply: ReplyWriter) -> Bool {
        guard server.scriptBusy.running.load(ordering: .acquiring) == 0 else { return true }
        if section.enter(index, .refuseWhenBusy, .shared) {
            section.exit(index)
            return true
        }
        guard let busy = server.scriptBusy.refusal(spec, args) else { return true }
        reply.error(busy)
        return false
    }

    /// Where a refused call counts: under its subcommand for a container Redis knows it of.
    private func rejectedStatID(_ spec: CommandSpec, _ args: [Bytes]) -> Int {
        guard !spec.subcommands.isEmpty, args.count > 1 else { return spec.id }
        return server.statID(spec.id, subcommand: "\(spec.name)|\(args[1].string.lowercased())")
    }

    /// CLIENT subcommands that touch only the client itself (or the pause state) may be
    /// queued; those that walk every shard's connections (LIST, KILL, UNBLOCK) may not,
    /// since EXEC holds every shard lock while the walk would wait on the other shards.
    static func clientSubcommandsInMulti(_ spec: CommandSpec, _ args: [Bytes]) -> Bool {
        guard spec.name == "client", args.count > 1 else { return false }
        return ["pause", "unpause", "id", "getname", "setname", "info", "setinfo", "no-evict", "no-touch", "reply"]
            .contains(args[1].string.lowercased())
    }

    /// A container's subcommand (CONFIG GET, XINFO STREAM, ...) checked against Redis's arity
    /// for it, as Redis checks it before the command runs.
    private func subcommandArityMatches(_ spec: CommandSpec, _ args: [Bytes]) -> Bool {
        guard !spec.subcommands.isEmpty, args.count >= 2,
              let sub = RedisCommandMetadata.byName["\(spec.name)|\(args[1].string.lowercased())"] else { return true }
        return sub.arity >= 0 ? args.count == sub.arity : args.count >= -sub.arity
    }

    /// The reply to a command name nobody knows (inside MULTI it also dooms the transaction).
    private func rejectUnknownCommand(_ conn: Connection, _ args: [Bytes]) {
        stats.commandsProcessed += 1
        writer(for: conn).error(Shard.unknownCommandMessage(args))
        if conn.skipReplies > 0 { conn.skipReplies -= 1 }
        conn.transaction?.failed = true
    }

    /// A command `runLocked` runs: no module, script or engine command.
    @inline(__always)
    private func isPlainData(_ spec: CommandSpec) -> Bool {
        !spec.flags.contains(.module) && !spec.flags.contains(.script) && !spec.flags.contains(.engine)
    }

    /// The name Redis gives a command in errors: `pubsub|numsub` for a known subcommand.
    static func fullName(_ spec: CommandSpec, _ args: [Bytes]) -> String {
        guard args.count > 1, !spec.subcommands.isEmpty else { return spec.name }
        let sub = args[1].string.lowercased()
        let full = "\(spec.name)|\(sub)"
        return spec.subcommands.contains(sub) || RedisCommandMetadata.byName[full] != nil ? full : spec.name
    }

    /// Redis's text: the name and arguments printed as C strings (a NUL ends each), the
    /// name cut at 128 bytes, arguments added while the list is under 128 bytes.
    package static func unknownCommandMessage(_ args: [Bytes]) -> String {
        func cString(_ b: Bytes, max: Int) -> String {
            String(decoding: b.withUnsafeBytes { Array($0.prefix { $0 != 0 }.prefix(max)) }, as: UTF8.self)
        }
        var list = ""
        for a in args.dropFirst() {
            guard list.utf8.count < 128 else { break }
            list += "'\(cString(a, max: 128 - list.utf8.count))' "
        }
        return "ERR unknown command '\(cString(args[0], max: 128))', with args beginning with: \(list)"
    }

    /// Which shards a data command needs locked.
    func lockSet(_ spec: CommandSpec, _ args: [Bytes], into set: inout ShardLockSet) {
        if spec.flags.locksEveryShard {
            for s in 0..<server.shards.count { set.insert(s) }
            return
        }
        for p in spec.keys.positions(args) { set.insert(server.slots.shard(of: args[p])) }
    }

    /// `lockSet` for a command's own keys, also telling the command (`argumentShards`)
    /// which shard each key argument lives on, so that it hashes each key once.
    private func lockSetRecordingShards(_ spec: CommandSpec, _ args: [Bytes], into set: inout ShardLockSet) {
        let ctx = context
        ctx.argumentShards.removeAll(keepingCapacity: true)
        ctx.argumentShards.append(contentsOf: repeatElement(-1, count: args.count))
        for p in spec.keys.positions(args) {
            let s = slots.shard(of: args[p])
            ctx.argumentShards[p] = s
            set.insert(s)
        }
    }

    /// The -BUSY reply of a command that waited for locks a busy script holds.
    package func replyBusy(_ spec: CommandSpec, _ args: [Bytes], _ reply: ReplyWriter) -> Bool {
        reply.error(server.scriptBusy.refusal(spec, args)
                    ?? "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.")
        return true
    }

    /// Runs one data command under its shards' locks; returns true when it replied an error.
    /// A `sharedRead` command takes them shared (ShardLock.swift), unless the batch keeps
    /// them exclusive already.
    func runLocked(_ spec: CommandSpec, _ args: [Bytes], _ conn: Connection, _ reply: ReplyWriter) -> Bool {
        let wanted: LockMode = spec.flags.contains(.sharedRead) ? .shared : .exclusive
        let held: LockMode
        // Fast path: one key, one lock. (A container command such as XINFO passes its arity
        // check without the key its subcommand needs; the general path finds no key then.)
        let k = spec.keys
        if k.finder == nil && k.first > 0 && k.first == k.last && k.first < args.count && !spec.flags.locksEveryShard {
            let s = slots.shard(of: args[k.first])
            conn.noteKeyShard(s, home: index)
            if section.cover(s, wanted) {
                held = section.kept.mode
            } else {
                guard section.enter(s, .refuseWhenBusy, wanted) else { return replyBusy(spec, args, reply) }
                held = wanted
            }
            context.keyShard = s
            let failed = runData(spec, args, conn, reply, held)
            context.keyShard = nil
            section.keepOrLeave(s, held, after: conn)
            section.finish()
            return failed
        }
        var set = ShardLockSet()
        if slots.shardCount > 1 && !spec.flags.locksEveryShard {
            lockSetRecordingShards(spec, args, into: &set)
        } else {
            lockSet(spec, args, into: &set)
        }
        if set.count > 0 { conn.noteKeyShard(set.count == 1 ? set.shards[0] : -1, home: index) }
        if section.cover(set, wanted) {
            held = section.kept.mode
        } else {
            guard section.enter(set, .refuseWhenBusy, wanted) else {
                context.argumentShards.removeAll(keepingCapacity: true)
                return replyBusy(spec, args, reply)
            }
            held = wanted
        }
        let failed = runData(spec, args, conn, reply, held)
        context.argumentShards.removeAll(keepingCapacity: true)
        section.keepOrLeave(set, held, after: conn)
        section.finish()
        return failed
    }

    /// Deletes the keys a reader under a shared lock found past their TTL, each under its
    /// shard's exclusive lock, as its lookup would have done under that lock: a key that
    /// has been given a new value or TTL meanwhile is left alone (the lookup checks the
    /// deadline again). A key whose lock a busy script holds is left to active expiry.
    func expireKeysSeenUnderSharedLock() {
        let now = context.now
        for (db, key) in context.expiredUnderSharedLock {
            let s = slots.shard(of: key)
            guard section.enter(s, .refuseWhenBusy) else { continue }
            _ = db.lookup(key, now: now)
            section.leave(s)
        }
        context.expiredUnderSharedLock.removeAll(keepingCapacity: true)
    }

    /// Runs a data command whose shard locks the caller holds.
    func runData(_ spec: CommandSpec, _ args: [Bytes], _ conn: Connection, _ reply: ReplyWriter,
                 _ held: LockMode = .exclusive) -> Bool {
        let ctx = context
        ctx.sharedLock = held == .shared
        defer { ctx.sharedLock = false }
        ctx.args = args
        // A pipeline's commands reply into one buffer: assigning it again would cost a
        // retain and a release per command for nothing.
        if ctx.reply.buffer !== reply.buffer || ctx.reply.protocolVersion != reply.protocolVersion {
            ctx.reply = reply
        }
        ctx.dbIndex = conn.db
        if !ctx.inTransaction { ctx.now = batchTime }
        ctx.maxBulkLength = server.config.maxBulkLength.load(ordering: .relaxed)
        ctx.notifyFlags = NotifyFlags(rawValue: server.config.notifyFlags.load(ordering: .relaxed))
        let dirtyBefore = ctx.dirty
        var failed = false
        if (spec.name == "flushall" || spec.name == "flushdb") && server.watchedKeys.load(ordering: .relaxed) > 0 {
            touchWatchersOfExistingKeys(db: spec.name == "flushdb" ? conn.db : nil)
        }
        do {
            try ctx.invoke(spec)
        } catch {
            reply.error(error.message)
            failed = true
        }
        // Let go of the argument array, so the parser may reuse it for the next command
        // instead of copying it.
        ctx.args = []
        if ctx.dirty != dirtyBefore && server.watchedKeys.load(ordering: .relaxed) > 0 {
            touchWatchers(spec, args, db: conn.db)
        }
        if !ctx.unchangedKeys.isEmpty { ctx.unchangedKeys.removeAll() }
        if let request = ctx.blockRequest {
            ctx.blockRequest = nil
            blocking.block(conn, request)
        }
        return failed
    }

    /// Marks WATCHers of keys a write changed (caller holds the keys' shard locks).
    private func touchWatchers(_ spec: CommandSpec, _ args: [Bytes], db: Int) {
        if spec.name == "flushall" || spec.name == "flushdb" { return }  // marked before they ran
        if spec.flags.contains(.allShards) {
            let everyDB = spec.name != "flushdb"
            for shard in server.shards where !shard.watchers.isEmpty {
                for (key, tokens) in shard.watchers where everyDB || key.db == db {
                    for t in tokens { t.dirty.store(true, ordering: .relaxed) }
                }
            }
            return
        }
        let keys = spec.keys.positions(args).map { args[$0] }
        touchWatchers(of: context.unchangedKeys.isEmpty ? keys : keys.filter { !context.unchangedKeys.contains($0) }, db: db)
    }

    /// Whether the watched key is present and unexpired (caller holds its shard lock).
    private func keyExists(_ w: WatchedKey, now: Int64) -> Bool {
        var expired = false
        return server.stores[w.shard].databases[w.db].lookupWithoutExpiring(w.key, now: now, expired: &expired) != nil
    }

    /// FLUSHALL / FLUSHDB (`db`) touch only the watched keys they delete, as Redis: a key
    /// watched while missing stays untouched. Caller holds every shard lock.
    private func touchWatchersOfExistingKeys(db: Int?) {
        let now = ShardStore.nowMilliseconds()
        for shard in server.shards where !shard.watchers.isEmpty {
            for (key, tokens) in shard.watchers where db == nil || key.db == db {
                var expired = false
                let store = server.stores[server.slots.shard(of: key.key)]
                guard store.databases[key.db].lookupWithoutExpiring(key.key, now: now, expired: &expired) != nil else { continue }
                for t in tokens { t.dirty.store(true, ordering: .relaxed) }
            }
        }
    }

    /// Marks WATCHers of `keys` (caller holds the keys' shard locks).
    func touchWatchers(of keys: [Bytes], db: Int) {
        for key in keys {
            let shard = server.shards[server.slots.shard(of: key)]
            guard !shard.watchers.isEmpty else { continue }
            for t in shard.watchers[DatabaseKey(db: db, key: key)] ?? [] { t.dirty.store(true, ordering: .relaxed) }
        }
    }

    // MARK: transactions

    func watch(_ conn: Connection, _ keys: ArraySlice<Bytes>) {
        for key in keys {
            let s = server.slots.shard(of: key)
            var w = WatchedKey(shard: s, db: conn.db, key: key)
            if conn.watched.contains(w) { continue }
            _ = section.enter(s, .outlastBusy)
            w.existed = keyExists(w, now: ShardStore.nowMilliseconds())
            server.shards[s].watchers[DatabaseKey(db: conn.db, key: key), default: []].append(conn.watchToken)
            server.watchedKeys.add(1, ordering: .relaxed)
            section.exit(s)
            conn.watched.append(w)
        }
    }

    func unwatchAll(_ conn: Connection) {
        for w in conn.watched {
            _ = section.enter(w.shard, .outlastBusy)
            let shard = server.shards[w.shard]
            let wk = DatabaseKey(db: w.db, key: w.key)
            if var tokens = shard.watchers[wk] {
                tokens.removeAll { $0 === conn.watchToken }
                shard.watchers[wk] = tokens.isEmpty ? nil : tokens
                server.watchedKeys.subtract(1, ordering: .relaxed)
            }
            section.exit(w.shard)
        }
        conn.watched = []
        conn.watchToken.dirty.store(false, ordering: .relaxed)
    }

    /// EXEC: every queued command runs under one lock set covering all of them and the
    /// watched keys, so the transaction is atomic and isolated across shards.
    func exec(_ conn: Connection, _ reply: ReplyWriter) -> Bool {
        guard let txn = conn.transaction else {
            reply.error("ERR EXEC without MULTI")
            return true
        }
        conn.transaction = nil
        if txn.failed {
            unwatchAll(conn)
            reply.error("EXECABORT Transaction discarded because of previous errors.")
            return true
        }
        var set = ShardLockSet()
        for (spec, args) in txn.queue where !spec.flags.contains(.engine) || spec.flags.locksEveryShard {
            lockSet(spec, args, into: &set)
        }
        for w in conn.watched { set.insert(w.shard) }
        // A transaction with a script takes the script lock first, as every script does
        // (ScriptSection.swift), and runs its scripts with every shard held.
        let hasScript = txn.queue.contains { $0.0.flags.contains(.script) }
        guard !hasScript || section.enterScript(.refuseWhenBusy) else {
            unwatchAll(conn)
            return replyBusy(txn.queue.first?.0 ?? server.commands.lookup(Bytes("exec"))!, [], reply)
        }
        guard section.enter(set, .refuseWhenBusy) else {
            if hasScript { section.exitScript() }
            unwatchAll(conn)
            return replyBusy(txn.queue.first?.0 ?? server.commands.lookup(Bytes("exec"))!, [], reply)
        }
        let now = ShardStore.nowMilliseconds()
        if conn.watchToken.dirty.load(ordering: .relaxed) || conn.watched.contains(where: { $0.existed && !keyExists($0, now: now) }) {
            if hasScript { section.exitScript() }
            section.exit(set)
            unwatchAll(conn)
            reply.nullArray()
            return false
        }
        reply.arrayHeader(txn.queue.count)
        context.inTransaction = true
        context.now = ShardStore.nowMilliseconds()
        context.beginEffectBatch()
        for (spec, args) in txn.queue {
            let start = clock.microseconds()
            let failed: Bool
            if spec.flags.contains(.module) {
                failed = server.extensions.modules.run(on: self, spec, conn, args, reply, locksHeld: true)
            } else if spec.flags.contains(.script) {
                feedMonitors(spec, conn, args)
                failed = server.extensions.scripting.run(on: self, spec, conn, args, reply, locksHeld: true)
            } else if spec.flags.contains(.engine) {
                failed = server.engineCommands[spec.id]!(self, conn, args, reply)
            } else {
                failed = runData(spec, args, conn, reply)
            }
            record(CallRecord(spec, args, db: conn.db, microseconds: clock.microseconds() - start, failed: failed,
                              slowlogCaller: conn.caller, monitorPeer: spec.flags.contains(.script) ? nil : conn.peer))
        }
        context.inTransaction = false
        context.endEffectBatch()  // still under the locks: the block keeps its place in the order
        section.leave(set)
        if hasScript { section.exitScript() }
        unwatchAll(conn)
        // Blocked clients are served only now that the whole transaction is done.
        section.finish()
        return false
    }
}

package func monotonicMicroseconds() -> Int {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec * 1_000_000 + ts.tv_nsec / 1000
}
