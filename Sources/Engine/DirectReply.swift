import Synchronization
import SystemPackage

/// The door through which a shard that served a client homed on another shard writes the
/// reply to the client's socket itself, instead of posting it home and waiting for that
/// thread to be scheduled. On busy cores the hop was most of a cross-shard wake's
/// latency, and all of its tail. The outcome still goes home afterwards, with whatever
/// the write left over, and the home shard finishes the wait as for any other outcome
/// (waiter tables, statistics, resuming the client's input).
///
/// Invariants:
/// - The home shard opens the door (`open`) only while it has nothing else to send the
///   client: its output is empty, no send is in flight, and the client, being blocked,
///   gets nothing more until its outcome is finished at home. So a reply written through
///   the door can never overtake the client's earlier replies.
/// - Only the thread that won `BlockedClient.claim(.served)` passes (`write`), at most
///   once: the door goes open -> writing -> done, and never opens again.
/// - The home shard shuts the door (`shut`) before it closes the descriptor, and if a
///   writer is inside it waits for it to leave (one non-blocking send): so a write never
///   reaches a descriptor number the kernel has given to another connection since.
package final class DirectReply: Sendable {
    private enum Door: UInt8 { case closed, open, writing, done, shut }

    private let descriptor: FileDescriptor
    private let door = Atomic<UInt8>(Door.closed.rawValue)

    init(descriptor: FileDescriptor) { self.descriptor = descriptor }

    /// Home shard: nothing is left to send before the reply.
    func open() {
        _ = door.compareExchange(expected: Door.closed.rawValue, desired: Door.open.rawValue, ordering: .releasing)
    }

    /// The serving shard, after winning the claim: writes what the socket takes now.
    /// Returns how many bytes went out, or nil when the door was not open (nothing written).
    func write(_ bytes: [UInt8]) -> Int? {
        guard door.compareExchange(expected: Door.open.rawValue, desired: Door.writing.rawValue,
                                   ordering: .acquiringAndReleasing).exchanged else { return nil }
        defer { door.store(Door.done.rawValue, ordering: .releasing) }
        let result = bytes.withUnsafeBytes { descriptor.send($0) }
        if case .success(let n) = result { return n }
        return 0  // would block, or the peer is gone: the home shard takes it from here
    }

    /// Home shard, before closing the descriptor.
    func shut() {
        while true {
            let now = door.load(ordering: .acquiring)
            if now == Door.writing.rawValue { continue }  // one send() away from done
            if now == Door.done.rawValue || now == Door.shut.rawValue { return }
            if door.compareExchange(expected: now, desired: Door.shut.rawValue, ordering: .acquiringAndReleasing).exchanged {
                return
            }
        }
    }
}
