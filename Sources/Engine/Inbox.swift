import Synchronization

/// A lock-free multi-producer, single-consumer queue: the one way into a shard from
/// other threads (other shards, the acceptor, and later module and function threads).
///
/// Invariants:
/// - `head` is a Treiber stack of retained nodes, newest first. Producers only push
///   (one CAS each); the consumer only takes the whole stack (one exchange), so there is
///   no ABA hazard and no node is touched by two consumers.
/// - A node's `next` is written before the CAS that publishes it (release) and read only
///   after the exchange that takes it (acquire).
/// - `drain` reverses each taken batch, so messages from any one producer come out in
///   the order that producer pushed them.
/// - `push` reports whether the queue was empty before it, and only that push needs to
///   wake the consumer: the consumer drains after every wake-up, so later pushes ride on
///   the wake-up already sent.
public final class Inbox<Message: Sendable>: @unchecked Sendable {
    private final class Node {
        let message: Message
        var next: Node?
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
            node.next = current.map { Unmanaged<Node>.fromOpaque($0).takeUnretainedValue() }
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
        var node: Node? = Unmanaged<Node>.fromOpaque(top).takeRetainedValue()
        while let n = node {
            out.append(n.message)
            node = n.next
            n.next = nil
        }
        out.reverse()
        return out
    }

    public var isEmpty: Bool { head.load(ordering: .relaxed) == nil }
}
