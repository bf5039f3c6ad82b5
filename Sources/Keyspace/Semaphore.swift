#if canImport(Glibc)
import Glibc
#endif

/// A counting semaphore for waiting on another thread.
public final class Semaphore: @unchecked Sendable {
    private let s = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
    public init() { sem_init(s, 0, 0) }
    deinit {
        sem_destroy(s)
        s.deallocate()
    }
    public func signal() { sem_post(s) }
    public func wait() { sem_wait(s) }

    /// Waits at most `seconds`; false on timeout.
    public func wait(seconds: Int) -> Bool { wait(milliseconds: seconds * 1000) }

    /// Waits at most `milliseconds`; false on timeout.
    public func wait(milliseconds: Int) -> Bool {
        var deadline = timespec()
        clock_gettime(CLOCK_REALTIME, &deadline)
        let nanoseconds = deadline.tv_nsec + (milliseconds % 1000) * 1_000_000
        deadline.tv_sec += milliseconds / 1000 + nanoseconds / 1_000_000_000
        deadline.tv_nsec = nanoseconds % 1_000_000_000
        while sem_timedwait(s, &deadline) != 0 {
            if errno != EINTR { return false }
        }
        return true
    }
}
