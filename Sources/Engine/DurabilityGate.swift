import Keyspace
import Synchronization

/// Replies held until the effects before them are on disk (`appendfsync always`).
///
/// A shard thread that is about to send replies while effects are appended but not yet
/// durable (`mustHold`) keeps those connections' output back (Shard.holdReplies) and,
/// before it waits for events again, has the append-only file write and fsync up to
/// the stream's end (`waitDurable`), then sends them. Every shard does the same, so the
/// effects of one moment share one fsync, whichever shard ran it.
///
/// Invariants: `holding` is true exactly while an append-only file with the always
/// policy is attached (set under every shard lock, with `durable` set to the stream's
/// position then); `durable` only grows.
final class DurabilityGate: Sendable {
    let holding = Atomic<Bool>(false)
    let durable = Atomic<UInt64>(0)
    private let file = Mutex<AppendOnlyFile?>(nil)

    /// Whether replies must wait: the always policy holds them, and `effects` has some not
    /// yet durable. One relaxed load when no file holds replies.
    @inline(__always)
    func mustHold(_ effects: EffectStream) -> Bool {
        holding.load(ordering: .relaxed) && durable.load(ordering: .acquiring) < effects.appended
    }

    /// Attaches (or with nil detaches) the file replies wait for.
    func serve(_ aof: AppendOnlyFile?, always: Bool, position: UInt64) {
        file.withLock { $0 = aof }
        if aof != nil { advance(to: position) }
        holding.store(aof != nil && always, ordering: .releasing)
    }

    func advance(to position: UInt64) {
        var seen = durable.load(ordering: .relaxed)
        while seen < position {
            let (done, now) = durable.compareExchange(expected: seen, desired: position, ordering: .acquiringAndReleasing)
            if done { return }
            seen = now
        }
    }

    /// Returns once every effect appended so far is durable (or no file holds replies).
    func waitDurable() {
        guard holding.load(ordering: .acquiring), let aof = file.withLock({ $0 }) else { return }
        aof.waitDurable()
    }
}
