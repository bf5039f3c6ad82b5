import RESP
import Synchronization

/// An effect: one command that a replica, or a replay of an append-only file, applies to
/// reach the state a write left. Effects are deterministic where the command was not:
/// SPOP becomes SREM of the members it took, EXPIRE becomes PEXPIREAT at the absolute
/// time, INCRBYFLOAT a SET of the result, a served BLPOP an LPOP, an `XADD *` the ID it
/// chose, a key that expired a DEL, a transaction or script its writes inside MULTI/EXEC.
public struct Effect: Sendable, Equatable {
    /// The database it applies to; -1 for none (MULTI, EXEC, FUNCTION LOAD).
    public let db: Int
    public let args: [Bytes]

    public init(db: Int, _ args: [Bytes]) {
        self.db = db
        self.args = args
    }

    public init(db: Int, _ words: String...) {
        self.init(db: db, words.map { Bytes($0) })
    }
}

/// Receives the effect stream, in order. Called on the thread that drains the stream,
/// never under a shard lock.
public protocol EffectConsumer: AnyObject, Sendable {
    func consume(_ effects: [Effect])
}

/// Every shard's effects in one total order: an effect is appended while the command
/// that made it still holds its keys' shard locks, so two commands that touched the same
/// key appear in the order they ran, and a transaction's or script's block is appended
/// whole, never interleaved with another client's effects.
///
/// Invariants: `pending` is appended under `lock` only, by whichever shard thread ran the
/// write, and taken whole by `drain`; effects are recorded only while `isEnabled` (set
/// once a consumer is attached, before clients connect), so a server without consumers
/// pays one relaxed load per write.
public final class EffectStream: @unchecked Sendable {
    private let enabled = Atomic<Bool>(false)
    private let lock = Mutex<[Effect]>([])
    private var consumers: [EffectConsumer] = []

    public init() {}

    @inline(__always)
    public var isEnabled: Bool { enabled.load(ordering: .relaxed) }

    /// Attaches a consumer; call before the server accepts clients.
    public func attach(_ consumer: EffectConsumer) {
        consumers.append(consumer)
        enabled.store(true, ordering: .releasing)
    }

    /// Appends effects as one unbroken run (the caller holds the shard locks of the keys
    /// they touched).
    public func append(_ effects: [Effect]) {
        guard isEnabled, !effects.isEmpty else { return }
        lock.withLock { $0.append(contentsOf: effects) }
    }

    public func append(_ effect: Effect) {
        guard isEnabled else { return }
        lock.withLock { $0.append(effect) }
    }

    /// Hands what was appended since the last call to every consumer, in order. One
    /// thread drains (the server's housekeeping loop, and shutdown after the shards stop).
    public func drain() {
        let batch = lock.withLock { pending -> [Effect] in
            let taken = pending
            pending.removeAll(keepingCapacity: true)
            return taken
        }
        guard !batch.isEmpty else { return }
        for c in consumers { c.consume(batch) }
    }
}
