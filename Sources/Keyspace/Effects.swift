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
/// never under a shard lock. `firstSequence` is the stream position of `effects[0]`
/// (every effect ever appended has the next number, from 0).
public protocol EffectConsumer: AnyObject, Sendable {
    func consume(_ effects: [Effect], firstSequence: UInt64)
}

/// Every shard's effects in one total order: an effect is appended while the command
/// that made it still holds its keys' shard locks, so two commands that touched the same
/// key appear in the order they ran, and a transaction's or script's block is appended
/// whole, never interleaved with another client's effects.
///
/// Invariants: `pending` is appended under `lock` only, by whichever shard thread ran the
/// write, and taken whole by `drain`; `appended` (the number of effects ever appended) is
/// advanced under `lock` with each append, so the effects in `pending` are numbered
/// `appended - pending.count ..< appended`; drains run one at a time (`draining`), so
/// consumers see the effects in order whichever thread drains (the main thread's
/// housekeeping, or the append-only file's writer when a client waits on an fsync).
/// Effects are recorded only while `isEnabled` (set once a consumer is attached, before
/// clients connect), so a server without consumers pays one relaxed load per write.
public final class EffectStream: @unchecked Sendable {
    private let enabled = Atomic<Bool>(false)
    private let lock = Mutex<[Effect]>([])
    private let appendedCount = Atomic<UInt64>(0)
    private let draining = Mutex<Void>(())
    private var consumers: [EffectConsumer] = []

    public init() {}

    @inline(__always)
    public var isEnabled: Bool { enabled.load(ordering: .relaxed) }

    /// How many effects were ever appended: the sequence number the next one gets.
    public var appended: UInt64 { appendedCount.load(ordering: .acquiring) }

    /// Attaches a consumer; call before the server accepts clients, or under every shard
    /// lock (CONFIG SET appendonly yes), with the stream drained.
    public func attach(_ consumer: EffectConsumer) {
        draining.withLock { _ in consumers.append(consumer) }
        enabled.store(true, ordering: .releasing)
    }

    /// Detaches a consumer (CONFIG SET appendonly no); the stream stays enabled for the
    /// others, or records nothing more when none is left.
    public func detach(_ consumer: EffectConsumer) {
        draining.withLock { _ in
            consumers.removeAll { $0 === consumer }
            if consumers.isEmpty { enabled.store(false, ordering: .releasing) }
        }
    }

    /// Appends effects as one unbroken run (the caller holds the shard locks of the keys
    /// they touched).
    public func append(_ effects: [Effect]) {
        guard isEnabled, !effects.isEmpty else { return }
        lock.withLock {
            $0.append(contentsOf: effects)
            appendedCount.add(UInt64(effects.count), ordering: .releasing)
        }
    }

    public func append(_ effect: Effect) {
        guard isEnabled else { return }
        lock.withLock {
            $0.append(effect)
            appendedCount.add(1, ordering: .releasing)
        }
    }

    /// Hands what was appended since the last call to every consumer, in order, and
    /// returns the sequence number after the last effect handed over.
    @discardableResult
    public func drain() -> UInt64 {
        draining.withLock { _ in
            let (batch, end) = lock.withLock { pending -> ([Effect], UInt64) in
                let taken = pending
                pending.removeAll(keepingCapacity: true)
                return (taken, appendedCount.load(ordering: .relaxed))
            }
            guard !batch.isEmpty else { return end }
            let first = end - UInt64(batch.count)
            for c in consumers { c.consume(batch, firstSequence: first) }
            return end
        }
    }
}
