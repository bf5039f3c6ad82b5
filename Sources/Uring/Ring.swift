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
    private var completions = [berth_completion](repeating: berth_completion(), count: 256)
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

    /// Probes whether this kernel and sandbox allow io_uring at all.
    public static func isAvailable() -> Bool { (try? Ring(entries: 8)) != nil }

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

    /// Hands every ready completion to `body`.
    public func drainCompletions(_ body: (Completion) -> Void) {
        while true {
            let n = Int(completions.withUnsafeMutableBufferPointer { berth_ring_completions(ring, $0.baseAddress, 256) })
            for i in 0..<n {
                let c = completions[i]
                body(Completion(tag: c.tag, result: c.result, flags: c.flags))
            }
            if n < 256 { return }
        }
    }
}
