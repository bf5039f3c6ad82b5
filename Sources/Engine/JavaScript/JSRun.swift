import Commands

/// One TFCALL or TFCALLASYNC: the function it calls, for which client, and how it may
/// behave. Its client waits as an ordinary blocked client whose wait is this run.
///
/// Invariants: everything but `client` is immutable; `client` is set by the home shard
/// before the run is posted to the library's thread (the post orders the write before
/// any read there) and never changes after. The reply is delivered once, by `complete`.
final class JSRun: ExternalWait, @unchecked Sendable {
    let id: UInt64
    let function: String
    let home: Int
    let db: Int
    let protocolVersion: Int
    let noWrites: Bool
    /// The client may wait for a promise: TFCALLASYNC outside MULTI.
    let blockAllowed: Bool
    var client: BlockedClient?

    init(id: UInt64, function: String, home: Int, db: Int, protocolVersion: Int, noWrites: Bool, blockAllowed: Bool) {
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
            if client.claim(.completed) { shard.finishBlocked(client, .reply(reply)) }
        })
    }
}
