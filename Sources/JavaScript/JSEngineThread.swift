import Engine
import Synchronization
import Keyspace

#if canImport(Glibc)
import Glibc
#endif

/// The dedicated thread of one library's engine: jobs posted from any thread run on it,
/// in order, one at a time.
///
/// Invariants: every job runs on `thread`, which exists from init until the job queue is
/// closed and drained; `jobs` is only touched under its mutex; a closed thread accepts no
/// jobs (they are dropped, and `post` says so).
final class JSEngineThread: @unchecked Sendable {
    typealias Job = @Sendable () -> Void

    private struct Queue {
        var jobs: [Job] = []
        var closed = false
    }
    private let queue = Mutex(Queue())
    private let ready = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
    private var thread = pthread_t()

    /// Starts the thread; `body` runs first on it (the engine's creation).
    init(_ body: @escaping @Sendable () -> Void) {
        sem_init(ready, 0, 0)
        let box = Unmanaged.passRetained(Start(thread: self, first: body)).toOpaque()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        // Room for SpiderMonkey's stack quota (6 MB) and the host frames below it.
        pthread_attr_setstacksize(&attributes, 16 << 20)
        pthread_create(&thread, &attributes, { arg in
            let start = Unmanaged<Start>.fromOpaque(arg!).takeRetainedValue()
            start.first()
            start.thread.loop()
            return nil
        }, box)
        pthread_attr_destroy(&attributes)
    }

    private final class Start {
        let thread: JSEngineThread
        let first: @Sendable () -> Void
        init(thread: JSEngineThread, first: @escaping @Sendable () -> Void) {
            self.thread = thread
            self.first = first
        }
    }

    /// Queues `job`; false when the thread is closed.
    @discardableResult
    func post(_ job: @escaping Job) -> Bool {
        let accepted = queue.withLock { q in
            guard !q.closed else { return false }
            q.jobs.append(job)
            return true
        }
        if accepted { sem_post(ready) }
        return accepted
    }

    /// Runs `last` after every job already queued, then ends the thread.
    func close(after last: @escaping Job) {
        let accepted = queue.withLock { q in
            guard !q.closed else { return false }
            q.jobs.append(last)
            q.closed = true
            return true
        }
        if accepted { sem_post(ready) }
    }

    private func loop() {
        while true {
            sem_wait(ready)
            let (job, finished) = queue.withLock { q -> (Job?, Bool) in
                guard !q.jobs.isEmpty else { return (nil, q.closed) }
                let job = q.jobs.removeFirst()
                return (job, q.closed && q.jobs.isEmpty)
            }
            job?()
            if finished { break }
        }
        pthread_detach(pthread_self())
    }
}
