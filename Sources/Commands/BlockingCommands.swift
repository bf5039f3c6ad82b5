import Keyspace
import RESP

// Blocking commands, the keyspace half.
//
// A blocking command first behaves as its non-blocking form. When nothing can serve it
// and blocking is allowed (not inside MULTI/EXEC), its handler replies nothing and files
// a `BlockRequest` in the context instead: the keys to wait on, the deadline, and the
// `BlockedOperation` to run when one of those keys can serve it. The engine registers
// the request while it still holds the keys' shard locks, so no write can slip between
// "found nothing" and "waiting". Later, after a write made a waited key ready, the
// engine claims the blocked client and calls `serve` here under the key's lock.

/// What a blocked client does once one of its keys can serve it.
extension BlockedOperation {
    /// The non-blocking command that does what serving this operation on `key` did: the
    /// effect a served blocked client leaves (BLPOP -> LPOP, BLMOVE -> LMOVE, ...).
    func effect(on key: Bytes) -> [Bytes]? {
        func count(_ n: Int?) -> [Bytes] { n.map { [Bytes(String($0))] } ?? [] }
        switch self {
        case .listPop(let left, let n):
            return [Bytes(left ? "LPOP" : "RPOP"), key] + count(n)
        case .listMove(let destination, let fromLeft, let toLeft):
            return [Bytes("LMOVE"), key, destination, Bytes(fromLeft ? "LEFT" : "RIGHT"), Bytes(toLeft ? "LEFT" : "RIGHT")]
        case .zsetPop(let max, let n):
            return [Bytes(max ? "ZPOPMAX" : "ZPOPMIN"), key] + count(n)
        case .streamGroupRead, .streamRead, .wait, .external:
            return nil  // a group read records its own (StreamGroupEffects.swift); the rest write nothing
        }
    }
}

public enum BlockedOperation: Sendable {
    /// BLPOP/BRPOP (`count == nil`: reply `[key, element]`) and BLMPOP (`[key, [elements]]`).
    case listPop(left: Bool, count: Int?)
    /// BLMOVE/BRPOPLPUSH: pop from the waited key, push to `destination`, reply the element.
    case listMove(destination: Bytes, fromLeft: Bool, toLeft: Bool)
    /// BZPOPMIN/BZPOPMAX (`count == nil`: `[key, member, score]`) and BZMPOP.
    case zsetPop(max: Bool, count: Int?)
    /// XREAD BLOCK: entries after the given ID of the stream that became ready.
    case streamRead(after: [Bytes: StreamID], count: Int?)
    /// XREADGROUP BLOCK with `>`: new entries delivered to `consumer` in `group`.
    case streamGroupRead(group: Bytes, consumer: Bytes, count: Int?, noAck: Bool)
    /// WAIT / WAITAOF: no keys; only the deadline or CLIENT UNBLOCK ends it.
    /// WAIT, or WAITAOF (`aof`), whose local fsync is done (`localSynced`) before it waits.
    case wait(aof: Bool, localSynced: Bool = false)
    /// A wait that something outside the data commands owns and ends (a module's blocked
    /// client): the engine decides its readiness and writes its replies.
    case external(any ExternalWait)

    /// The engine's own wait, for `.external`.
    public var external: (any ExternalWait)? {
        if case .external(let w) = self { return w }
        return nil
    }

    /// A second key the operation writes to, whose shard must be locked too.
    public var destination: Bytes? {
        if case .listMove(let d, _, _) = self { return d }
        return nil
    }

    /// The reply when the deadline passes (or CLIENT UNBLOCK ... TIMEOUT), which is also
    /// the reply of the command inside MULTI when nothing is there.
    public func writeTimeoutReply(_ w: ReplyWriter) {
        switch self {
        case .listMove: w.null()
        case .wait(let aof, let synced):
            if aof { w.arrayHeader(2); w.integer(synced ? 1 : 0); w.integer(0) } else { w.integer(0) }
        default: w.nullArray()
        }
    }
}

/// The engine's handle on a wait it owns itself (`BlockedOperation.external`).
public protocol ExternalWait: AnyObject, Sendable {}

/// A blocking command's request to wait, filed by its handler for the engine.
public struct BlockRequest: Sendable {
    /// Keys to wait on, without repeats, in the order the command named them.
    public var keys: [Bytes]
    /// Wall-clock milliseconds; 0 waits until served or unblocked.
    public var deadline: Int64
    public var operation: BlockedOperation
}

public enum Blocking {
    /// Parses a blocking timeout into an absolute deadline (0: none), with Redis's errors.
    public static func deadline(_ arg: Bytes, now: Int64, inSeconds: Bool) throws(CommandError) -> Int64 {
        var ms: Int64
        if inSeconds {
            // Read in long double, as Redis does: 1e400 seconds is a number (and then out of
            // range for a timeout), not a malformed one.
            guard FloatIncrement.kind(arg) != .invalid, let seconds = Numbers.rangeDouble(arg), !seconds.isNaN else {
                throw CommandError("ERR timeout is not a float or out of range")
            }
            let scaled = (seconds * 1000).rounded(.up)
            guard scaled < 9.2e18 else { throw CommandError("ERR timeout is out of range") }
            guard scaled > -9.2e18 else { throw CommandError("ERR timeout is negative") }  // -inf too
            ms = Int64(scaled)
        } else {
            guard let v = Numbers.int(arg) else { throw CommandError("ERR timeout is not an integer or out of range") }
            ms = Int64(v)
        }
        guard ms >= 0 else { throw CommandError("ERR timeout is negative") }
        guard ms == 0 || ms <= Int64.max - now else { throw CommandError("ERR timeout is out of range") }
        return ms == 0 ? 0 : now + ms
    }

    /// Files the request, or inside MULTI/EXEC answers as the non-blocking form would.
    static func blockOrGiveUp(_ ctx: CommandContext, keys: [Bytes], deadline: Int64, _ op: BlockedOperation) {
        if ctx.inTransaction {
            op.writeTimeoutReply(ctx.reply)
            return
        }
        var distinct: [Bytes] = []
        for k in keys where !distinct.contains(k) { distinct.append(k) }
        ctx.blockRequest = BlockRequest(keys: distinct, deadline: deadline, operation: op)
    }

    /// Whether `key` can serve `op` now. Caller holds the key's shard lock.
    public static func isReady(_ ctx: CommandContext, key: Bytes, _ op: BlockedOperation) -> Bool {
        switch op {
        case .listPop, .listMove:
            guard case .list(let l)? = ctx.lookup(key)?.value else { return false }
            return !l.items.isEmpty
        case .zsetPop:
            guard case .zset(let z)? = ctx.lookup(key)?.value else { return false }
            return z.count > 0
        case .streamRead(let after, _):
            return StreamCommands.hasEntries(ctx, key: key, after: after[key] ?? .zero)
        case .streamGroupRead(let group, _, _, _):
            return StreamGroupCommands.groupReadIsReady(ctx, key: key, group: group)
        case .wait, .external:
            return false
        }
    }

    /// Runs `op` for a claimed client on `key`, writing its reply to `ctx.reply`.
    /// Caller holds the locks of `key` and of `op.destination`, and checked `isReady`.
    public static func serve(_ ctx: CommandContext, key: Bytes, _ op: BlockedOperation) throws(CommandError) {
        let dirtyBefore = ctx.dirty, explicitBefore = ctx.explicitEffects
        try serveWithoutEffect(ctx, key: key, op)
        if ctx.dirty != dirtyBefore && ctx.explicitEffects == explicitBefore, let effect = op.effect(on: key) {
            ctx.propagate(effect)
        }
    }

    private static func serveWithoutEffect(_ ctx: CommandContext, key: Bytes, _ op: BlockedOperation) throws(CommandError) {
        switch op {
        case .listPop(let left, let count):
            let l = try ctx.list(key)!
            if let count {
                ListCommands.popReply(ctx, key, l, left: left, count: count)
            } else {
                let v = left ? l.items.removeFirst() : l.items.removeLast()
                ctx.notify(.list, left ? "lpop" : "rpop", key)
                ctx.deleteIfEmpty(key, l.items.isEmpty)
                ctx.dirty += 1
                ctx.reply.arrayHeader(2)
                ctx.reply.bulk(key)
                ctx.reply.bulk(v)
            }
        case .listMove(let destination, let fromLeft, let toLeft):
            try ListCommands.move(ctx, from: key, to: destination, fromLeft: fromLeft, toLeft: toLeft)
        case .zsetPop(let max, let count):
            if let count {
                try SortedSetCommands.popReply(ctx, key, max: max, count: count)
            } else {
                let ((member, score), empty) = try ctx.modifySortedSet(key) { z in
                    (SortedSetCommands.popItems(&z, count: 1, max: max)[0], z.count == 0)
                }
                ctx.notify(.zset, max ? "zpopmax" : "zpopmin", key)
                ctx.deleteIfEmpty(key, empty)
                ctx.dirty += 1
                ctx.reply.arrayHeader(3)
                ctx.reply.bulk(key)
                ctx.reply.bulk(member)
                ctx.reply.double(score)
            }
        case .streamRead(let after, let count):
            StreamCommands.serveRead(ctx, key: key, after: after[key] ?? .zero, count: count)
        case .streamGroupRead(let group, let consumer, let count, let noAck):
            try StreamGroupCommands.serveGroupRead(ctx, key: key, group: group, consumer: consumer, count: count, noAck: noAck)
        case .wait, .external:
            break
        }
    }
}

/// BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP, WAIT, WAITAOF.
enum BlockingCommands {
    static let specs: [CommandSpec] = [
        CommandSpec("blpop", arity: -3, flags: [.write, .blocking], keys: KeySpec(1, -2, 1)) { ctx throws(CommandError) in
            try blockingListPop(ctx, left: true)
        },
        CommandSpec("brpop", arity: -3, flags: [.write, .blocking], keys: KeySpec(1, -2, 1)) { ctx throws(CommandError) in
            try blockingListPop(ctx, left: false)
        },
        CommandSpec("blmove", arity: 6, flags: [.write, .denyOOM, .blocking], keys: KeySpec(1, 2, 1)) { ctx throws(CommandError) in
            let from = try ListCommands.side(ctx, 3), to = try ListCommands.side(ctx, 4)
            try blockingMove(ctx, timeoutAt: 5, fromLeft: from, toLeft: to)
        },
        CommandSpec("brpoplpush", arity: 4, flags: [.write, .denyOOM, .blocking], keys: KeySpec(1, 2, 1)) { ctx throws(CommandError) in
            try blockingMove(ctx, timeoutAt: 3, fromLeft: false, toLeft: true)
        },
        CommandSpec("blmpop", arity: -5, flags: [.write, .blocking], keys: KeySpec(finder: numkeysFinder(at: 2))) { ctx throws(CommandError) in
            let (keys, left, count) = try ListCommands.parseMultiPop(ctx, at: 2)
            let deadline = try Blocking.deadline(ctx.args[1], now: ctx.now, inSeconds: true)
            for key in keys {
                guard let l = try ctx.list(key), !l.items.isEmpty else { continue }
                ListCommands.popReply(ctx, key, l, left: left, count: count)
                return
            }
            Blocking.blockOrGiveUp(ctx, keys: keys, deadline: deadline, .listPop(left: left, count: count))
        },
        CommandSpec("bzpopmin", arity: -3, flags: [.write, .fast, .blocking], keys: KeySpec(1, -2, 1)) { ctx throws(CommandError) in
            try blockingZsetPop(ctx, max: false)
        },
        CommandSpec("bzpopmax", arity: -3, flags: [.write, .fast, .blocking], keys: KeySpec(1, -2, 1)) { ctx throws(CommandError) in
            try blockingZsetPop(ctx, max: true)
        },
        CommandSpec("bzmpop", arity: -5, flags: [.write, .blocking], keys: KeySpec(finder: numkeysFinder(at: 2))) { ctx throws(CommandError) in
            let (keys, max, count) = try SortedSetCommands.parseMultiPop(ctx, at: 2)
            let deadline = try Blocking.deadline(ctx.args[1], now: ctx.now, inSeconds: true)
            for key in keys {
                guard let z = try ctx.zset(key), z.count > 0 else { continue }
                try SortedSetCommands.popReply(ctx, key, max: max, count: count)
                return
            }
            Blocking.blockOrGiveUp(ctx, keys: keys, deadline: deadline, .zsetPop(max: max, count: count))
        },
        CommandSpec("wait", arity: 3, flags: [.blocking]) { ctx throws(CommandError) in
            let replicas = try ctx.int(1)
            let deadline = try Blocking.deadline(ctx.args[2], now: ctx.now, inSeconds: false)
            // Berth has no replicas: none can acknowledge, so asking for any waits out the timeout.
            if replicas <= 0 { ctx.reply.integer(0); return }
            Blocking.blockOrGiveUp(ctx, keys: [], deadline: deadline, .wait(aof: false))
        },
        CommandSpec("waitaof", arity: 4, flags: [.blocking]) { ctx throws(CommandError) in
            let local = try ctx.int(1), replicas = try ctx.int(2)
            let deadline = try Blocking.deadline(ctx.args[3], now: ctx.now, inSeconds: false)
            // The local count: 1 once every write so far is fsynced to the append-only file
            // (which this makes happen now rather than at the next everysec tick).
            let synced = ctx.syncAppendOnlyFile()
            if local > 0 && !synced {
                throw CommandError("ERR WAITAOF cannot be used when numlocal is set but appendonly is disabled.")
            }
            if replicas <= 0 {
                ctx.reply.arrayHeader(2); ctx.reply.integer(synced ? 1 : 0); ctx.reply.integer(0)
                return
            }
            Blocking.blockOrGiveUp(ctx, keys: [], deadline: deadline, .wait(aof: true, localSynced: synced))
        },
    ]

    static func blockingListPop(_ ctx: CommandContext, left: Bool) throws(CommandError) {
        let deadline = try Blocking.deadline(ctx.args[ctx.args.count - 1], now: ctx.now, inSeconds: true)
        let keys = Array(ctx.args[1..<(ctx.args.count - 1)])
        for key in keys {
            guard let l = try ctx.list(key), !l.items.isEmpty else { continue }
            try Blocking.serve(ctx, key: key, .listPop(left: left, count: nil))
            return
        }
        Blocking.blockOrGiveUp(ctx, keys: keys, deadline: deadline, .listPop(left: left, count: nil))
    }

    static func blockingMove(_ ctx: CommandContext, timeoutAt i: Int, fromLeft: Bool, toLeft: Bool) throws(CommandError) {
        let deadline = try Blocking.deadline(ctx.args[i], now: ctx.now, inSeconds: true)
        let src = ctx.args[1], dst = ctx.args[2]
        if let l = try ctx.list(src), !l.items.isEmpty {
            try ListCommands.move(ctx, from: src, to: dst, fromLeft: fromLeft, toLeft: toLeft)
            return
        }
        Blocking.blockOrGiveUp(ctx, keys: [src], deadline: deadline, .listMove(destination: dst, fromLeft: fromLeft, toLeft: toLeft))
    }

    static func blockingZsetPop(_ ctx: CommandContext, max: Bool) throws(CommandError) {
        let deadline = try Blocking.deadline(ctx.args[ctx.args.count - 1], now: ctx.now, inSeconds: true)
        let keys = Array(ctx.args[1..<(ctx.args.count - 1)])
        for key in keys {
            guard let z = try ctx.zset(key), z.count > 0 else { continue }
            try Blocking.serve(ctx, key: key, .zsetPop(max: max, count: nil))
            return
        }
        Blocking.blockOrGiveUp(ctx, keys: keys, deadline: deadline, .zsetPop(max: max, count: nil))
    }
}
