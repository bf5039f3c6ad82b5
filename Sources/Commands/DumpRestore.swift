import Keyspace
import Persistence
import RESP

/// DUMP and RESTORE: a value as a payload in Redis's format (the RDB encoding of the
/// value, the RDB version, a CRC64), so a DUMP from redis-server or Valkey RESTOREs into
/// Berth and back.
enum DumpRestore {
    static let specs: [CommandSpec] = [
        CommandSpec("dump", arity: 2, flags: [.readonly], keys: KeySpec(1, 1, 1), handler: dump),
        CommandSpec("restore", arity: -4, flags: [.write, .denyOOM], keys: KeySpec(1, 1, 1), handler: restore),
    ]

    static func dump(_ ctx: CommandContext) throws(CommandError) {
        guard let e = ctx.lookupRead(ctx.args[1]) else { ctx.reply.null(); return }
        guard let payload = RDBOutput.dump(e.value, compress: true) else {
            throw CommandError("ERR this module type cannot be serialized")
        }
        ctx.reply.bulk(Bytes(payload))
    }

    /// RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]
    static func restore(_ ctx: CommandContext) throws(CommandError) {
        let key = ctx.args[1]
        var replace = false, absolute = false
        var idle: Int?, freq: Int?
        var i = 4
        while i < ctx.args.count {
            let more = i + 1 < ctx.args.count
            if ctx.option(i, "replace") {
                replace = true
            } else if ctx.option(i, "absttl") {
                absolute = true
            } else if ctx.option(i, "idletime") && more && freq == nil {
                guard let n = Numbers.int(ctx.args[i + 1]) else { throw .notInteger }
                guard n >= 0 else { throw CommandError("ERR Invalid IDLETIME value, must be >= 0") }
                idle = n
                i += 1
            } else if ctx.option(i, "freq") && more && idle == nil {
                guard let n = Numbers.int(ctx.args[i + 1]) else { throw .notInteger }
                guard n >= 0 && n <= 255 else { throw CommandError("ERR Invalid FREQ value, must be >= 0 and <= 255") }
                freq = n
                i += 1
            } else {
                throw .syntax
            }
            i += 1
        }
        let db = ctx.db(key)
        let existing = ctx.lookup(key)
        if existing != nil && !replace { throw CommandError("BUSYKEY Target key name already exists.") }
        guard var ttl = Numbers.int(ctx.args[2]).map(Int64.init) else { throw .notInteger }
        guard ttl >= 0 else { throw CommandError("ERR Invalid TTL value, must be >= 0") }
        let value: Value
        do {
            value = try RDBReader.value(fromDump: ctx.args[3], target: ModuleTypes(ctx.moduleType))
        } catch let error as RDBError {
            throw CommandError("ERR \(error.message)")
        } catch {
            throw CommandError("ERR Bad data format")
        }
        if ttl != 0 && !absolute { ttl += ctx.now }
        if ttl != 0 && ttl <= ctx.now {
            // Already expired: it replaces nothing but what REPLACE deletes.
            if let existing {
                db.removeEntry(existing)
                ctx.notify(.generic, "del", key)
                ctx.propagate([Bytes("DEL"), key])
                ctx.dirty += 1
            } else {
                ctx.recordsOwnEffects()
            }
            ctx.reply.ok()
            return
        }
        let entry = db.overwrite(existing, key, value, expireAt: ttl)
        // Kept when the policy uses it (IDLETIME under LRU, FREQ under LFU), as in Redis.
        if idle != nil || freq != nil { entry.restoreAccess(idleSeconds: idle, frequency: freq) }
        if ttl != 0 && !absolute {
            // Replayed later, a relative TTL would mean another moment: the effect carries
            // the deadline, as Redis propagates it.
            var args = ctx.args
            args[2] = Bytes(Int(ttl))
            args.append(Bytes("ABSTTL"))
            ctx.propagate(args)
        }
        ctx.notify(.generic, "restore", key)
        ctx.dirty += 1
        ctx.reply.ok()
    }
}

/// RESTORE's view of the loaded module types: a payload's module value is read by its
/// type's rdb_load; nothing else of a load target is used for one value.
private final class ModuleTypes: RDBLoadTarget {
    private let lookup: (UInt64) -> (any RDBModuleType)?
    init(_ lookup: @escaping (UInt64) -> (any RDBModuleType)?) { self.lookup = lookup }
    func aux(_ key: Bytes, _ value: Bytes) {}
    func functionLibrary(_ source: Bytes) throws {}
    func key(_ key: Bytes, _ value: Value, db: Int, expireAt: Int64, access: SavedAccess) {}
    func moduleType(id: UInt64) -> (any RDBModuleType)? { lookup(id) }
}
