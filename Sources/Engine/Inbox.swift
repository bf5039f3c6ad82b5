import Synchronization

/// A lock-free multi-producer, single-consumer queue: the one way into a shard from
/// other threads (other shards, the acceptor, and later module and function threads).
///
/// Invariants:
/// - `head` is a Treiber stack of nodes, newest first, each holding one retain that the
///   stack owns. Producers only push (one CAS each); the consumer only takes the whole
///   stack (one exchange), so no node is touched by two consumers.
/// - A producer never dereferences a node it did not create: `next` is a raw pointer, so
///   linking a new node to the current head neither retains nor reads that head, which
///   the consumer may be freeing at that very moment. (Linking with a strong reference
///   retained a node after the consumer had released it: a use-after-free.)
/// - A node's `message` and `next` are written before the CAS that publishes it
///   (release) and read only after the exchange that takes it (acquire).
/// - `drain` reverses each taken batch, so messages from any one producer come out in
///   the order that producer pushed them.
/// - `push` reports whether the queue was empty before it, and only that push needs to
///   wake the consumer: the consumer drains after every wake-up, so later pushes ride on
///   the wake-up already sent.
public final class Inbox<Message: Sendable>: @unchecked Sendable {
    private final class Node {
        let message: Message
        var next: UnsafeMutableRawPointer?
        init(_ message: Message) { self.message = message }
    }

    private let head = Atomic<UnsafeMutableRawPointer?>(nil)

    public init() {}

    deinit { _ = drain() }

    /// Adds a message; returns true when the queue was empty (the caller wakes the consumer).
    @discardableResult
    public func push(_ message: Message) -> Bool {
        let node = Node(message)
        let raw = Unmanaged.passRetained(node).toOpaque()
        var current = head.load(ordering: .relaxed)
        while true {
            node.next = current
            let (exchanged, original) = head.compareExchange(
                expected: current, desired: raw, successOrdering: .releasing, failureOrdering: .relaxed)
            if exchanged { return original == nil }
            current = original
        }
    }

    /// Takes every queued message, oldest first per producer. Consumer thread only.
    public func drain() -> [Message] {
        guard let top = head.exchange(nil, ordering: .acquiring) else { return [] }
        var out: [Message] = []
        var cursor: UnsafeMutableRawPointer? = top
        while let raw = cursor {
            let n = Unmanaged<Node>.fromOpaque(raw).takeRetainedValue()
            out.append(n.message)
            cursor = n.next
        }
        out.reverse()
        return out
    }

    public var isEmpty: Bool { head.load(ordering: .relaxed) == nil }
}
