import Keyspace
import RESP

/// String commands: GET/SET and friends, counters, ranges, MGET/MSET.
enum StringCommands {
    static let specs: [CommandSpec] = [
        CommandSpec("get", arity: 2, flags: [.readonly, .fast, .sharedRead], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            if let s = try ctx.string(ctx.args[1]) { ctx.reply.bulk(s) } else { ctx.reply.null() }
        },
        CommandSpec("set", arity: -3, flags: [.write, .denyOOM], keys: KeySpec(1, 1, 1), handler: set),
        CommandSpec("setnx", arity: 3, flags: [.write, .denyOOM, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            let key = ctx.args[1]
            if ctx.lookup(key) != nil { ctx.reply.integer(0); return }
            ctx.inDatabase(of: key) { _ = $0.add(key, .string(ctx.args[2])) }
            ctx.dirty += 1
            ctx.reply.integer(1)
        },
        CommandSpec("setex", arity: 4, flags: [.write, .denyOOM], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            try setWithExpire(ctx, unitMs: 1000, name: "setex")
        },
        CommandSpec("psetex", arity: 4, flags: [.write, .denyOOM], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            try setWithExpire(ctx, unitMs: 1, name: "psetex")
        },
        CommandSpec("getset", arity: 3, flags: [.write, .denyOOM, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            let key = ctx.args[1]
            let old = try ctx.string(key)
            ctx.inDatabase(of: key) { _ = $0.overwrite(key, .string(ctx.args[2]), now: ctx.now) }
            ctx.dirty += 1
            if let old { ctx.reply.bulk(old) } else { ctx.reply.null() }
        },
        CommandSpec("getdel", arity: 2, flags: [.write, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            let key = ctx.args[1]
            guard let old = try ctx.string(key) else { ctx.reply.null(); return }
            _ = ctx.delete(key)
            ctx.dirty += 1
            ctx.reply.bulk(old)
        },
        CommandSpec("getex", arity: -2, flags: [.write, .fast], keys: KeySpec(1, 1, 1), handler: getex),
        CommandSpec("mget", arity: -2, flags: [.readonly, .fast, .sharedRead], keys: KeySpec(1, -1, 1)) { ctx throws(CommandError) in
            ctx.prefetchKeys(stride(from: 1, to: ctx.args.count, by: 1))
            ctx.reply.arrayHeader(ctx.args.count - 1)
            for i in 1..<ctx.args.count {
                if let e = ctx.lookupRead(argument: i), case .string(let s) = e.value { ctx.reply.bulk(s) } else { ctx.reply.null() }
            }
        },
        CommandSpec("mset", arity: -3, flags: [.write, .denyOOM], keys: KeySpec(1, -1, 2)) { ctx throws(CommandError) in
            guard ctx.args.count % 2 == 1 else { throw .wrongArity("mset") }
            ctx.prefetchKeys(stride(from: 1, to: ctx.args.count, by: 2))
            for i in stride(from: 1, to: ctx.args.count, by: 2) {
                ctx.inDatabase(ofArgument: i) { _ = $0.overwrite(ctx.args[i], .string(ctx.args[i + 1]), now: ctx.now) }
                ctx.notify(.string, "set", ctx.args[i])
            }
            ctx.dirty += (ctx.args.count - 1) / 2
            ctx.reply.ok()
        },
        CommandSpec("msetnx", arity: -3, flags: [.write, .denyOOM], keys: KeySpec(1, -1, 2)) { ctx throws(CommandError) in
            guard ctx.args.count % 2 == 1 else { throw .wrongArity("msetnx") }
            ctx.prefetchKeys(stride(from: 1, to: ctx.args.count, by: 2))
            for i in stride(from: 1, to: ctx.args.count, by: 2) where ctx.lookup(argument: i) != nil {
                ctx.reply.integer(0); return
            }
            for i in stride(from: 1, to: ctx.args.count, by: 2) {
                ctx.inDatabase(ofArgument: i) { _ = $0.overwrite(ctx.args[i], .string(ctx.args[i + 1]), now: ctx.now) }
                ctx.notify(.string, "set", ctx.args[i])
            }
            ctx.dirty += (ctx.args.count - 1) / 2
            ctx.reply.integer(1)
        },
        CommandSpec("append", arity: 3, flags: [.write, .denyOOM, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            let key = ctx.args[1]
            let suffix = ctx.args[2], limit = ctx.maxBulkLength
            if let e = ctx.lookup(key) {
                guard case .string = e.value else { throw .wrongType }
                let count = e.modifyString { bytes -> Int? in
                    guard bytes.count + suffix.count <= limit else { return nil }
                    suffix.withUnsafeBytes { bytes.appendGrowing(contentsOf: $0) }
                    return bytes.count
                }
                guard let count = count ?? nil else { throw .tooBig }
                ctx.reply.integer(count)
            } else {
                ctx.db(key).add(key, .string(suffix))
                ctx.reply.integer(suffix.count)
            }
            ctx.dirty += 1
        },
        CommandSpec("strlen", arity: 2, flags: [.readonly, .fast, .sharedRead], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            ctx.reply.integer(try ctx.string(ctx.args[1])?.count ?? 0)
        },
        CommandSpec("getrange", arity: 4, flags: [.readonly, .sharedRead], keys: KeySpec(1, 1, 1), handler: getrange),
        CommandSpec("substr", arity: 4, flags: [.readonly, .sharedRead], keys: KeySpec(1, 1, 1), handler: getrange),
        CommandSpec("setrange", arity: 4, flags: [.write, .denyOOM], keys: KeySpec(1, 1, 1), handler: setrange),
        CommandSpec("incr", arity: 2, flags: [.write, .denyOOM, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            try incrBy(ctx, 1)
        },
        CommandSpec("decr", arity: 2, flags: [.write, .denyOOM, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            try incrBy(ctx, -1)
        },
        CommandSpec("incrby", arity: 3, flags: [.write, .denyOOM, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            try incrBy(ctx, try ctx.int(2))
        },
        CommandSpec("decrby", arity: 3, flags: [.write, .denyOOM, .fast], keys: KeySpec(1, 1, 1)) { ctx throws(CommandError) in
            let by = try ctx.int(2)
            guard by != Int.min else { throw CommandError("ERR decrement would overflow") }
            try incrBy(ctx, -by)
        },
        CommandSpec("incrbyfloat", arity: 3, flags: [.write, .denyOOM, .fast], keys: KeySpec(1, 1, 1), handler: FloatIncrement.incrByFloat),
    ]

    static func set(_ ctx: CommandContext) throws(CommandError) {
        let key = ctx.args[1]
        var nx = false, xx = false, get = false, keepTTL = false
        var expireAt: Int64? = nil
        var i = 3
        while i < ctx.args.count {
            let a = ctx.args[i]
            let hasNext = i + 1 < ctx.args.count
            if a.equalsIgnoringCase("nx") && !xx { nx = true }
            else if a.equalsIgnoringCase("xx") && !nx { xx = true }
            else if a.equalsIgnoringCase("get") { get = true }
            else if a.equalsIgnoringCase("keepttl") && expireAt == nil { keepTTL = true }
            else if hasNext && expireAt == nil && !keepTTL,
                    let unit = expireUnit(a) {
                i += 1
                expireAt = try deadline(ctx, ctx.args[i], unit: unit, command: "set")
            } else { throw .syntax }
            i += 1
        }
        let existing = ctx.lookup(key)
        var old: Bytes? = nil
        if get, let e = existing {
            guard case .string(let s) = e.value else { throw .wrongType }
            old = s
        }
        let applies = !(nx && existing != nil) && !(xx && existing == nil)
        if applies {
            ctx.inDatabase(of: key) { db in
                db.overwrite(existing, key, .string(ctx.args[2]), keepTTL: keepTTL, expireAt: expireAt ?? 0)
            }
            ctx.dirty += 1
        }
        // With GET the reply is the old value whether or not the SET applied.
        if get {
            if let old { ctx.reply.bulk(old) } else { ctx.reply.null() }
        } else if applies {
            ctx.reply.ok()
        } else {
            ctx.reply.null()
        }
    }

    enum ExpireUnit { case seconds, milliseconds, unixSeconds, unixMilliseconds }

    static func expireUnit(_ a: Bytes) -> ExpireUnit? {
        if a.equalsIgnoringCase("ex") { return .seconds }
        if a.equalsIgnoringCase("px") { return .milliseconds }
        if a.equalsIgnoringCase("exat") { return .unixSeconds }
        if a.equalsIgnoringCase("pxat") { return .unixMilliseconds }
        return nil
    }

    /// An absolute deadline in ms from an EX/PX/EXAT/PXAT argument; Redis rejects
    /// non-positive values and values that overflow when converted.
    static func deadline(_ ctx: CommandContext, _ arg: Bytes, unit: ExpireUnit, command: String) throws(CommandError) -> Int64 {
        guard let v = Numbers.int(arg) else { throw .notInteger }
        let invalid = CommandError("ERR invalid expire time in '\(command)' command")
        guard v > 0 else { throw invalid }
        switch unit {
        case .seconds:
            let (ms, o) = Int64(v).multipliedReportingOverflow(by: 1000)
            let (at, o2) = ms.addingReportingOverflow(ctx.now)
            guard !o && !o2 else { throw invalid }
            return at
        case .milliseconds:
            let (at, o) = Int64(v).addingReportingOverflow(ctx.now)
            guard !o else { throw invalid }
            return at
        case .unixSeconds:
            let (ms, o) = Int64(v).multipliedReportingOverflow(by: 1000)
            guard !o else { throw invalid }
            return ms
        case .unixMilliseconds:
            return Int64(v)
        }
    }

    static func setWithExpire(_ ctx: CommandContext, unitMs: Int64, name: String) throws(CommandError) {
        let key = ctx.args[1]
        let at = try deadline(ctx, ctx.args[2], unit: unitMs == 1000 ? .seconds : .milliseconds, command: name)
        ctx.inDatabase(of: key) { db in
            db.overwrite(db.lookup(key, now: ctx.now), key, .string(ctx.args[3]), expireAt: at)
        }
        ctx.dirty += 1
        ctx.reply.ok()
    }

    static func getex(_ ctx: CommandContext) throws(CommandError) {
        let key = ctx.args[1]
        var expiry: (text: Bytes, unit: ExpireUnit)? = nil
        var persist = false
        var i = 2
        while i < ctx.args.count {
            let a = ctx.args[i]
            if a.equalsIgnoringCase("persist") && expiry == nil && !persist { persist = true }
            else if let unit = expireUnit(a), i + 1 < ctx.args.count, expiry == nil, !persist {
                i += 1
                expiry = (ctx.args[i], unit)
            } else { throw .syntax }
            i += 1
        }
        guard let e = ctx.lookupRead(key) else { ctx.reply.null(); return }
        guard case .string(let s) = e.value else { throw .wrongType }
        // The time is read after the key's type is checked, as Redis does.
        let expireAt = try expiry.map { (e) throws(CommandError) in try deadline(ctx, e.text, unit: e.unit, command: "getex") }
        let db = ctx.db(key)
        if let expireAt {
            if expireAt <= ctx.now { db.removeEntry(e) } else { _ = db.setExpire(e, at: expireAt) }
            ctx.dirty += 1
        } else if persist && e.expireAt != 0 {
            db.persist(e)
            ctx.dirty += 1
        }
        ctx.reply.bulk(s)
    }

    static func getrange(_ ctx: CommandContext) throws(CommandError) {
        var start = try ctx.int(2), end = try ctx.int(3)
        guard let s = try ctx.string(ctx.args[1]) else { ctx.reply.bulk(Bytes()); return }
        let n = s.count
        if start < 0 && end < 0 && start > end { ctx.reply.bulk(Bytes()); return }
        if start < 0 { start = max(0, n + start) }
        if end < 0 { end = max(0, n + end) }
        end = min(end, n - 1)
        guard n > 0, start <= end, start < n else { ctx.reply.bulk(Bytes()); return }
        s.withUnsafeBytes { ctx.reply.bulk(UnsafeRawBufferPointer(rebasing: $0[start...end])) }
    }

    static func setrange(_ ctx: CommandContext) throws(CommandError) {
        let key = ctx.args[1]
        let offset = try ctx.int(2)
        guard offset >= 0 else { throw CommandError("ERR offset is out of range") }
        let patch = ctx.args[3]
        let entry = ctx.lookup(key)
        if let entry, case .string = entry.value {} else if entry != nil { throw .wrongType }
        if patch.isEmpty {
            if case .string(let s) = entry?.value { ctx.reply.integer(s.count) } else { ctx.reply.integer(0) }
            return
        }
        guard offset <= ctx.maxBulkLength - patch.count else { throw .tooBig }
        let count = try ctx.modifyString(key) { bytes -> Int in
            bytes.padWithZeros(to: offset + patch.count)
            patch.withUnsafeBytes { p in
                bytes.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: offset).copyMemory(from: p.baseAddress!, byteCount: p.count) }
            }
            return bytes.count
        }
        ctx.dirty += 1
        ctx.reply.integer(count)
    }

    static func incrBy(_ ctx: CommandContext, _ by: Int) throws(CommandError) {
        let key = ctx.args[1]
        let e = ctx.lookup(key)
        var current = 0
        if let e {
            guard case .string(let s) = e.value else { throw .wrongType }
            guard let v = Numbers.int(s) else { throw .notInteger }
            current = v
        }
        let (result, overflow) = current.addingReportingOverflow(by)
        guard !overflow else { throw .overflow }
        if let e {
            e.value = .string(Bytes(result))
        } else {
            ctx.inDatabase(of: key) { _ = $0.add(key, .string(Bytes(result))) }
        }
        ctx.dirty += 1
        ctx.reply.integer(result)
    }
}
