import Keyspace
import RESP

/// The effects of consumer-group reads and claims, as Redis propagates them: which
/// entries a read delivered or a claim took depends on the moment (new entries, idle
/// times), so each is recorded as the state it left, not as the command.
///
/// - A delivered or claimed entry: `XCLAIM key group consumer 0 id TIME t RETRYCOUNT n
///   FORCE JUSTID LASTID last`, which recreates its pending entry with its delivery time
///   and count (and the consumer) wherever it is applied.
/// - The group's position after a `>` read, or an XCLAIM LASTID: `XGROUP SETID key group
///   last ENTRIESREAD n` (-1 when the count is unknown).
/// - A consumer a read or claim created: `XGROUP CREATECONSUMER key group consumer`.
/// - A pending entry dropped because its entry was deleted: `XACK key group id`.
enum StreamGroupEffects {
    static func claimed(_ ctx: CommandContext, key: Bytes, _ g: ConsumerGroup, _ id: StreamID, _ p: PendingEntry) {
        ctx.propagate([Bytes("XCLAIM"), key, g.name, p.consumer, Bytes("0"), id.bytes,
                       Bytes("TIME"), Bytes(String(p.deliveryTime)), Bytes("RETRYCOUNT"), Bytes(String(p.deliveryCount)),
                       Bytes("FORCE"), Bytes("JUSTID"), Bytes("LASTID"), g.lastDelivered.bytes])
    }

    static func position(_ ctx: CommandContext, key: Bytes, _ g: ConsumerGroup) {
        ctx.propagate([Bytes("XGROUP"), Bytes("SETID"), key, g.name, g.lastDelivered.bytes,
                       Bytes("ENTRIESREAD"), Bytes(String(g.entriesRead ?? -1))])
    }

    static func consumerCreated(_ ctx: CommandContext, key: Bytes, _ g: ConsumerGroup, _ name: Bytes) {
        ctx.propagate([Bytes("XGROUP"), Bytes("CREATECONSUMER"), key, g.name, name])
    }

    static func dropped(_ ctx: CommandContext, key: Bytes, _ g: ConsumerGroup, _ id: StreamID) {
        ctx.propagate([Bytes("XACK"), key, g.name, id.bytes])
    }
}
