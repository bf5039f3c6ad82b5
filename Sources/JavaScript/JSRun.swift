import Engine
import Commands
import Keyspace

/// One TFCALL or TFCALLASYNC: the function it calls, for which client, and how it may
/// behave. Its client waits as an ordinary blocked client whose wait is this run.
///
/// Invariants: everything but `client` is immutable; `client` is set by the home shard
/// before the run is posted to the library's thread (the post orders the write before
/// any read there) and never changes after. The reply is delivered once, by `complete`.
final class JSRun: EngineWait, @unchecked Sendable {
    let id: UInt64
    let function: String
    let home: Int
    let db: Int
    let protocolVersion: Int
    let noWrites: Bool
    /// ALLOW_OOM: may enter atomic sections past maxmemory.
    let allowOOM: Bool
    /// The client may wait for a promise: TFCALLASYNC outside MULTI.
    let blockAllowed: Bool
    var client: BlockedClient?
    /// Set for a call inside EXEC, which runs on locks the transaction lends.
    let lent: LentSection?

    init(id: UInt64, function: String, home: Int, db: Int, protocolVersion: Int, noWrites: Bool, allowOOM: Bool,
         blockAllowed: Bool, lent: LentSection? = nil) {
        self.allowOOM = allowOOM
        self.lent = lent
        self.id = id
        self.function = function
        self.home = home
        self.db = db
        self.protocolVersion = protocolVersion
        self.noWrites = noWrites
        self.blockAllowed = blockAllowed
    }

    /// Hands the reply to the home shard; it reaches the client only if the client is still
    /// waiting there (not unblocked, not gone).
    func complete(_ reply: [UInt8], server: Server) {
        guard let client else { return }
        server.shards[home].post(.run { shard in
            if client.claim(.completed) { shard.blocking.finishBlocked(client, .reply(reply)) }
        })
    }
}

/// A call made inside EXEC: the transaction already holds every shard lock, so the
/// library's thread borrows them, with the shard's command context (ready keys and
/// keyspace events then flow as for the transaction's other commands), while the shard's
/// thread waits for the reply.
///
/// Invariants: `context` is used by the library's thread only between the post and
/// `done.signal()`, while its shard's thread waits; `reply` is written before the signal
/// and read after the wait.
final class LentSection: @unchecked Sendable {
    let context: CommandContext
    let done = Semaphore()
    var reply: [UInt8] = []

    init(context: CommandContext) { self.context = context }
}
