import Engine
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Watches every library's thread every 10 ms: a sync function or block section past
/// lock-redis-timeout is stopped when library-fatal-failure-policy is `abort` (the
/// section's partial effects stay, as documented) and only reported under `kill`; while
/// JavaScript runs, the engine is asked to check js-memory-limit.
///
/// Invariants: the thread starts at most once per server (`started`), and only reads the
/// libraries' atomics and asks for interrupts, which are safe from any thread.
final class JSWatchdog: Sendable {
    private let started = Atomic<Bool>(false)

    func start(_ server: Server) {
        guard !started.exchange(true, ordering: .acquiringAndReleasing) else { return }
        _ = spawnThread { [unowned server] in
            while true {
                usleep(10_000)
                JSWatchdog.check(server)
            }
        }
    }

    private static func check(_ server: Server) {
        let timeout = server.config.int("lock-redis-timeout")
        let abort = server.config.get("library-fatal-failure-policy") == "abort"
        let memoryLimit = server.config.int("js-memory-limit")
        let now = monotonicMicroseconds() / 1000
        for library in server.javascript.all {
            let since = library.sectionStartedAt.load(ordering: .acquiring)
            if since > 0 && now - since > timeout && !library.stopRequested.exchange(true, ordering: .relaxed) {
                if abort {
                    server.log.warning("JavaScript library \(library.name) held the server for more than \(timeout) ms: stopping it (library-fatal-failure-policy abort)")
                    library.interrupt(stop: true, memoryLimit: memoryLimit)
                } else {
                    server.log.warning("JavaScript library \(library.name) holds the server for more than \(timeout) ms; letting it run (library-fatal-failure-policy kill)")
                }
            }
            if memoryLimit > 0 && library.executing.load(ordering: .acquiring) { library.interrupt(stop: false, memoryLimit: memoryLimit) }
        }
    }
}
