import CUring
#if canImport(Glibc)
import Glibc
#endif

/// One io_uring instance, owned and driven by a single thread.
///
/// The thin, typed face of liburing for the rest of Berth: operations are prepared with
/// a 64-bit tag, completions come back as `Completion` values. Nothing of liburing's C
/// types leaks out of this file.
public final class Ring {
    public struct Completion {
        public let tag: UInt64
        public let result: Int32
        public let flags: UInt32
        /// A multishot operation stays armed only while this is set.
        public var hasMore: Bool { flags & berth_IORING_CQE_F_MORE != 0 }
    }

    public enum SetupError: Error { case unavailable(errno: Int32) }

    private let ring: UnsafeMutablePointer<io_uring>
    /// True when the ring runs with SINGLE_ISSUER | DEFER_TASKRUN (kernel 6.1+).
    public let deferredTaskRun: Bool

    /// Creates a ring on the calling thread, which must be the only thread that uses it.
    public init(entries: UInt32 = 4096) throws {
        ring = .allocate(capacity: 1)
        var params = io_uring_params()
        params.flags = berth_IORING_SETUP_SINGLE_ISSUER | berth_IORING_SETUP_DEFER_TASKRUN
        var rc = io_uring_queue_init_params(entries, ring, &params)
        var deferred = true
        if rc < 0 {
            params = io_uring_params()
            deferred = false
            rc = io_uring_queue_init_params(entries, ring, &params)
        }
        guard rc >= 0 else {
            ring.deallocate()
            throw SetupError.unavailable(errno: -rc)
        }
        deferredTaskRun = deferred
    }

    deinit {
        io_uring_queue_exit(ring)
        ring.deallocate()
    }

    /// Probes whether this kernel and sandbox allow io_uring at all.
    public static func isAvailable() -> Bool {
        (try? Ring(entries: 8)) != nil
    }

    private func nextSQE() -> UnsafeMutablePointer<io_uring_sqe> {
        if let sqe = io_uring_get_sqe(ring) { return sqe }
        io_uring_submit(ring)
        while true {
            if let sqe = io_uring_get_sqe(ring) { return sqe }
            io_uring_submit(ring)
        }
    }

    public func recv(fd: Int32, into buffer: UnsafeMutableRawPointer, count: Int, tag: UInt64) {
        let sqe = nextSQE()
        io_uring_prep_recv(sqe, fd, buffer, count, 0)
        io_uring_sqe_set_data64(sqe, tag)
    }

    public func send(fd: Int32, from buffer: UnsafeRawPointer, count: Int, tag: UInt64) {
        let sqe = nextSQE()
        io_uring_prep_send(sqe, fd, buffer, count, Int32(MSG_NOSIGNAL))
        io_uring_sqe_set_data64(sqe, tag)
    }

    public func read(fd: Int32, into buffer: UnsafeMutableRawPointer, count: Int, tag: UInt64) {
        let sqe = nextSQE()
        io_uring_prep_read(sqe, fd, buffer, UInt32(count), 0)
        io_uring_sqe_set_data64(sqe, tag)
    }

    public func multishotAccept(fd: Int32, tag: UInt64) {
        let sqe = nextSQE()
        io_uring_prep_multishot_accept(sqe, fd, nil, nil, Int32(SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue))
        io_uring_sqe_set_data64(sqe, tag)
    }

    public func cancel(tag: UInt64) {
        let sqe = nextSQE()
        io_uring_prep_cancel64(sqe, tag, 0)
        io_uring_sqe_set_data64(sqe, UInt64.max)
    }

    /// Submits what was prepared and waits up to `timeoutMs` for at least one completion.
    public func submitAndWait(timeoutMs: Int) {
        var ts = __kernel_timespec(tv_sec: Int64(timeoutMs / 1000), tv_nsec: Int64(timeoutMs % 1000) * 1_000_000)
        var cqe: UnsafeMutablePointer<io_uring_cqe>? = nil
        _ = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, nil)
    }

    public func submit() { io_uring_submit(ring) }

    /// Hands every ready completion to `body`, then marks them all seen.
    public func drainCompletions(_ body: (Completion) -> Void) {
        var batch = [UnsafeMutablePointer<io_uring_cqe>?](repeating: nil, count: 256)
        while true {
            let n = batch.withUnsafeMutableBufferPointer { io_uring_peek_batch_cqe(ring, $0.baseAddress, 256) }
            if n == 0 { return }
            var completions: [Completion] = []
            completions.reserveCapacity(Int(n))
            for i in 0..<Int(n) {
                let c = batch[i]!.pointee
                completions.append(Completion(tag: c.user_data, result: c.res, flags: c.flags))
            }
            io_uring_cq_advance(ring, n)
            for c in completions { body(c) }
            if n < 256 { return }
        }
    }
}
