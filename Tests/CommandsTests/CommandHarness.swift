import Commands
import Keyspace
import RESP

/// Runs data commands in process, as the engine does for one client, over a keyspace of
/// `shards` stores, without threads, locks or sockets; replies come back as RESP text.
final class CommandHarness {
    let table = CommandTable()
    let stores: [ShardStore]
    let context: CommandContext
    var now: Int64 = 1_000_000

    init(shards: Int = 2) {
        stores = (0..<shards).map { _ in ShardStore(databases: 16) }
        context = CommandContext(stores: stores, slots: SlotMap(shards: shards),
                                 reply: ReplyWriter(buffer: IOBuffer(capacity: 64), protocolVersion: 2))
    }

    /// The reply to one command, e.g. `run("ZADD", "z", "1", "m")` -> ":1\r\n".
    @discardableResult
    func run(_ words: String..., protocolVersion: Int = 2) -> String {
        run(words.map { Bytes($0) }, protocolVersion: protocolVersion)
    }

    func run(_ args: [Bytes], protocolVersion: Int = 2) -> String {
        let out = IOBuffer(capacity: 256)
        let writer = ReplyWriter(buffer: out, protocolVersion: protocolVersion)
        guard let spec = table.lookup(args[0]) else { return "-ERR unknown command\r\n" }
        guard spec.arityMatches(args.count) else { return "-ERR wrong number of arguments\r\n" }
        context.args = args
        context.reply = writer
        context.now = now
        context.keyShard = nil
        do throws(CommandError) {
            try spec.handler!(context)
        } catch {
            writer.error(error.message)
        }
        return String(decoding: out.readableArray, as: UTF8.self)
    }
}
