import Commands
import Keyspace
import RESP

extension Server {
    /// Runs a data command from inside a module callback or a script, whose caller holds
    /// every shard lock: in `cc` (the shard's own context on a shard thread, so ready keys
    /// and keyspace events flow as for any command), as inside MULTI (a blocking command
    /// answers at once), and returns its reply bytes. `cc`'s state is restored after.
    /// With `countingErrors` false its error replies stay out of INFO errorstats (a module's
    /// Call: the module counts them if it replies with them).
    package func runNested(_ spec: CommandSpec, _ args: [Bytes], in cc: CommandContext, db: Int, protocolVersion: Int,
                   countingErrors: Bool = true) -> IOBuffer {
        runNested(spec, args, in: cc, db: db, protocolVersion: protocolVersion, allowingBlock: false,
                  countingErrors: countingErrors).reply
    }

    /// runNested, except that with `allowingBlock` a blocking command that has to wait
    /// files its request instead of answering at once: the request comes back, and the
    /// caller registers the wait (JavaScript's callAsync).
    package func runNested(_ spec: CommandSpec, _ args: [Bytes], in cc: CommandContext, db: Int, protocolVersion: Int,
                   allowingBlock: Bool, countingErrors: Bool = true) -> (reply: IOBuffer, block: BlockRequest?) {
        let out = IOBuffer(capacity: 256)
        let writer = ReplyWriter(buffer: out, protocolVersion: protocolVersion, countsErrors: countingErrors)
        let saved = (cc.args, cc.reply, cc.dbIndex, cc.inTransaction, cc.keyShard)
        cc.args = args
        cc.reply = writer
        cc.dbIndex = db
        cc.inTransaction = !allowingBlock
        cc.keyShard = nil
        cc.maxBulkLength = config.maxBulkLength.load(ordering: .relaxed)
        cc.notifyFlags = NotifyFlags(rawValue: config.notifyFlags.load(ordering: .relaxed))
        let dirtyBefore = cc.dirty
        do throws(CommandError) {
            try cc.invoke(spec)
        } catch {
            writer.error(error.message)
        }
        let block = cc.blockRequest
        cc.blockRequest = nil
        if cc.dirty != dirtyBefore && watchedKeys.load(ordering: .relaxed) > 0 {
            shards[0].touchWatchers(of: spec.keys.positions(args).map { args[$0] }, db: db)
        }
        (cc.args, cc.reply, cc.dbIndex, cc.inTransaction, cc.keyShard) = saved
        return (out, block)
    }

    /// The reply of the connection-free engine commands scripts and functions commonly
    /// use (PING, ECHO, TIME), or nil for any other command without a data handler.
    package func connectionFreeReply(_ spec: CommandSpec, _ args: [Bytes], protocolVersion: Int) -> [UInt8]? {
        let out = IOBuffer(capacity: 64)
        let w = ReplyWriter(buffer: out, protocolVersion: protocolVersion)
        switch spec.name {
        case "ping": if args.count > 1 { w.bulk(args[1]) } else { w.simple("PONG") }
        case "echo": w.bulk(args[1])
        case "time":
            let us = Int(ShardStore.nowMilliseconds()) * 1000
            w.bulkArray([Bytes(us / 1_000_000), Bytes(us % 1_000_000)])
        default: return nil
        }
        return out.readableArray
    }
}
