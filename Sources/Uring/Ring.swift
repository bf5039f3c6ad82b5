import CUring

/// One io_uring instance, owned and driven by a single thread.
///
/// The typed Swift face of the ring: operations are prepared with a 64-bit tag and
/// completions come back as `Completion` values. liburing itself stays behind the C shim.
public final class Ring {
    public struct Completion {
        public let tag: UInt64
        public let result: Int32
        public let flags: UInt32
        /// A multishot operation stays armed only while this is set.
        public var hasMore: Bool { flags & UInt32(BERTH_CQE_F_MORE) != 0 }
    }

    public enum SetupError: Error { case unavailable(errno: Int32) }

    private let ring: OpaquePointer
    /// Completions taken off the ring and not yet handed out: `taken[next..<takenCount]`.
    private var taken = [berth_completion](repeating: berth_completion(), count: 256)
    private var takenCount = 0
    private var next = 0
    /// True when the ring runs with SINGLE_ISSUER | DEFER_TASKRUN (kernel 6.1+).
    public let deferredTaskRun: Bool

    /// Creates a ring on the calling thread, which must be the only thread that uses it.
    public init(entries: UInt32 = 4096) throws {
        var deferred: Int32 = 0, error: Int32 = 0
        guard let r = berth_ring_create(entries, &deferred, &error) else { throw SetupError.unavailable(errno: error) }
        ring = r
        deferredTaskRun = deferred != 0
    }

    deinit { berth_ring_destroy(ring) }

    /// Probes whether this kernel and sandbox allow io_uring, with every operation the
    /// event loop uses (multishot accept, recv that polls first: kernel 5.19 or later).
    public static func isAvailable() -> Bool {
        guard let probe = try? Ring(entries: 8) else { return false }
        return berth_ring_has_required_ops(probe.ring) != 0
    }

    public func recv(fd: Int32, into buffer: UnsafeMutableRawPointer, count: Int, tag: UInt64) {
        berth_ring_recv(ring, fd, buffer, count, tag)
    }

    public func send(fd: Int32, from buffer: UnsafeRawPointer, count: Int, tag: UInt64) {
        berth_ring_send(ring, fd, buffer, count, tag)
    }

    public func read(fd: Int32, into buffer: UnsafeMutableRawPointer, count: Int, tag: UInt64) {
        berth_ring_read(ring, fd, buffer, UInt32(count), tag)
    }

    public func multishotAccept(fd: Int32, tag: UInt64) { berth_ring_accept_multishot(ring, fd, tag) }

    /// Submits what was prepared and waits up to `timeoutMicros` for at least one completion.
    public func submitAndWait(timeoutMicros: Int) { berth_ring_submit_and_wait(ring, Int64(timeoutMicros)) }

    public func submit() { berth_ring_submit(ring) }

    /// Hands every ready completion to `body`, in order.
    ///
    /// Re-entrant: `body` may drain again (a busy script serving other clients from
    /// inside a command). Completions are taken off the ring in batches into `taken`, and
    /// each leaves `taken` before `body` sees it, so a nested drain goes on with the
    /// rest of the batch the outer one was in the middle of: none is seen twice, and none
    /// waits for the outer `body` to return.
    public func drainCompletions(_ body: (Completion) -> Void) {
        while true {
            if next >= takenCount {
                takenCount = Int(taken.withUnsafeMutableBufferPointer { berth_ring_completions(ring, $0.baseAddress, 256) })
                next = 0
                if takenCount == 0 { return }
            }
            let c = taken[next]
            next += 1
            body(Completion(tag: c.tag, result: c.result, flags: c.flags))
        }
    }
}
