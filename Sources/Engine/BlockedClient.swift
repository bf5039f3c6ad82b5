import Commands
import Keyspace
import RESP
import Synchronization

/// A client blocked by BLPOP, BZPOPMIN, XREAD BLOCK, WAIT and friends.
///
/// Invariants (the blocking state machine; docs/architecture.md explains the whole):
/// - `state` starts at `.waiting` and leaves it exactly once, by one compare-and-swap in
///   `claim`. The thread whose claim wins owns the outcome; every other claimant does
///   nothing. So a served client is never also timed out, unblocked or disconnected.
/// - A serving shard claims *before* it pops, while it holds the key's shard lock and
///   has just seen the key can serve the client; so data is taken only for a winner,
///   and an element is never popped for a client that already timed out or left.
/// - Everything but `state` is immutable after creation, so any thread may read it.
/// - The client sits in the waiter table of every shard owning one of its keys until
///   its home shard removes it after the outcome (`Shard.finishBlocked`); serving
///   shards also drop it from the queue they served, and skip it wherever it is stale.
/// - Only the home shard's thread touches the connection; other shards reach it by
///   posting the reply to the home shard's inbox, after writing it to the socket
///   themselves when the home shard opened `directReply` for them.
package final class BlockedClient: Sendable {
    package enum State: UInt8 {
        case waiting, served, timedOut, unblocked, disconnected, completed
    }

    let connectionID: Int
    /// Index of the shard that owns the connection.
    package let home: Int
    let db: Int
    /// The keys waited on, each with the shard that owns it.
    let keys: [(shard: Int, key: DatabaseKey)]
    let operation: BlockedOperation
    let protocolVersion: Int
    /// Wall-clock milliseconds; 0 for none.
    let deadline: Int64
    /// CLIENT REPLY OFF/SKIP was in force when the command ran: its reply is dropped.
    let discardsReply: Bool
    /// Set for a wait with no connection behind it (a JavaScript function's callAsync):
    /// the home shard hands the outcome, as RESP bytes, here instead of to a client.
    let completion: (@Sendable ([UInt8]) -> Void)?
    /// Set when a serving shard may write the reply to the socket itself (DirectReply.swift).
    let directReply: DirectReply?
    private let state = Atomic<UInt8>(State.waiting.rawValue)

    package init(connectionID: Int, home: Int, db: Int, keys: [(shard: Int, key: DatabaseKey)], operation: BlockedOperation,
         protocolVersion: Int, deadline: Int64, discardsReply: Bool, completion: (@Sendable ([UInt8]) -> Void)? = nil,
         directReply: DirectReply? = nil) {
        self.completion = completion
        self.directReply = directReply
        self.connectionID = connectionID
        self.home = home
        self.db = db
        self.keys = keys
        self.operation = operation
        self.protocolVersion = protocolVersion
        self.deadline = deadline
        self.discardsReply = discardsReply
    }

    package var isWaiting: Bool { state.load(ordering: .acquiring) == State.waiting.rawValue }

    var outcome: State { State(rawValue: state.load(ordering: .acquiring))! }

    /// Moves `.waiting` to `outcome`; true for the one caller that wins.
    package func claim(_ outcome: State) -> Bool {
        state.compareExchange(expected: State.waiting.rawValue, desired: outcome.rawValue,
                              successOrdering: .acquiringAndReleasing, failureOrdering: .acquiring).exchanged
    }
}

/// How a blocked client's wait ended, as its home shard turns it into a reply.
package enum BlockOutcome: Sendable {
    /// Served: the reply bytes the serving shard wrote.
    case reply([UInt8])
    /// Deadline passed, or CLIENT UNBLOCK ... TIMEOUT: the command's own timeout reply.
    case timeout
    /// CLIENT UNBLOCK ... ERROR.
    case error(String)
    /// Served, and the serving shard wrote `count` bytes of the reply to the socket
    /// itself (DirectReply.swift); `rest` is what the socket did not take.
    case written(count: Int, rest: [UInt8], isError: Bool)

    /// Whether the client gets an error reply (a failed call in INFO commandstats).
    var isError: Bool {
        switch self {
        case .reply(let bytes): return bytes.first == UInt8(ascii: "-")
        case .timeout: return false
        case .error: return true
        case .written(_, _, let isError): return isError
        }
    }
}

/// What the blocking state machine asks of a wait it does not run itself
/// (`BlockedOperation.external`): a module's blocked client (ModuleBlocking.swift) or a
/// JavaScript run (JSRun.swift). Blocking.swift calls these at the points where a data
/// command's wait would be served, replied to or dropped; every call but `keyReadied`
/// runs on the client's home shard after its claim was won. The defaults suit a wait on
/// no keys that answers like any command (a JavaScript run).
package protocol EngineWait: ExternalWait {
    /// A key `client` waits on was readied; `serving` holds that key's lock. The wait
    /// decides for itself whether it is served (a module asks its reply callback, on the
    /// client's home shard).
    func keyReadied(_ client: BlockedClient, key: Bytes, serving: Shard)
    /// Whether CLIENT UNBLOCK may end the wait.
    var mayBeUnblocked: Bool { get }
    /// The reply when the deadline passes or CLIENT UNBLOCK ends it with a timeout; nil for
    /// the blocked command's own timeout reply.
    func timeoutReply(on shard: Shard, protocolVersion: Int) -> [UInt8]?
    /// The client disconnected while waiting.
    func clientDisconnected(on shard: Shard)
    /// The wait is over, whatever ended it.
    func finished(on shard: Shard)
    /// The command that started the wait ran for `microseconds`: true when the wait
    /// reports that time itself once it ends (a module adds its background time to it).
    func commandRan(_ commandID: Int, microseconds: Int) -> Bool
}

package extension EngineWait {
    func keyReadied(_ client: BlockedClient, key: Bytes, serving: Shard) {}
    var mayBeUnblocked: Bool { true }
    func timeoutReply(on shard: Shard, protocolVersion: Int) -> [UInt8]? { nil }
    func clientDisconnected(on shard: Shard) {}
    func finished(on shard: Shard) {}
    func commandRan(_ commandID: Int, microseconds: Int) -> Bool { false }
}

extension BlockedOperation {
    /// The engine-side wait of an `.external` operation.
    var engineWait: (any EngineWait)? { external as? any EngineWait }
}
