import Commands
import Keyspace
import RESP

extension Server {
    /// Runs a data command from inside a module callback or a script, whose caller holds
    /// every shard lock: in `cc` (the shard's own context on a shard thread, so ready keys
    /// and keyspace events flow as for any command), as inside MULTI (a blocking command
    /// answers at once), and returns its reply bytes. `cc`'s state is restored after.
    func runNested(_ spec: CommandSpec, _ args: [Bytes], in cc: CommandContext, db: Int, protocolVersion: Int) -> IOBuffer {
        let out = IOBuffer(capacity: 256)
        let writer = ReplyWriter(buffer: out, protocolVersion: protocolVersion)
        let saved = (cc.args, cc.reply, cc.dbIndex, cc.inTransaction, cc.keyShard)
        cc.args = args
        cc.reply = writer
        cc.dbIndex = db
        cc.inTransaction = true
        cc.keyShard = nil
        cc.maxBulkLength = config.maxBulkLength.load(ordering: .relaxed)
        cc.notifyFlags = NotifyFlags(rawValue: config.notifyFlags.load(ordering: .relaxed))
        let dirtyBefore = cc.dirty
        let eventsBefore = cc.events.count
        do throws(CommandError) {
            try spec.handler!(cc)
        } catch {
            writer.error(error.message)
        }
        cc.blockRequest = nil
        if !cc.notifyFlags.isEmpty && cc.dirty != dirtyBefore, let (flag, event) = eventsByCommand[spec.id],
           cc.notifyFlags.contains(flag) {
            cc.events.insert(KeyspaceEvent(db: db, key: args[1], event: event), at: eventsBefore)
        }
        if cc.dirty != dirtyBefore && watchedKeys.load(ordering: .relaxed) > 0 {
            shards[0].touchWatchers(of: spec.keys.positions(args).map { args[$0] }, db: db)
        }
        (cc.args, cc.reply, cc.dbIndex, cc.inTransaction, cc.keyShard) = saved
        return out
    }
}
