import RESP
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Freeing large values away from the shard threads, as Redis's lazyfree does with its
/// background thread. UNLINK, FLUSHALL/FLUSHDB ASYNC and, when the lazyfree-lazy-*
/// settings say so, DEL (`-user-del`), eviction (`-eviction`), expiry (`-expire`),
/// overwrites and internal deletes (`-server-del`) and plain FLUSHALL (`-user-flush`) hand
/// what would take long to free to one thread that drops it: a value whose freeing takes
/// more than 64 steps (Redis's LAZYFREE_THRESHOLD, counted as Redis counts them: one for a
/// packed hash or sorted set, which is one buffer here too, one per element otherwise), or
/// a flushed database's whole key table (counted as its keys, as Redis counts it). Smaller
/// values are freed at once, which costs less than the hand-off.
///
/// A hand-off takes the value out of its entry, so the thread's reference is normally the
/// last and the memory is freed there. A value something else still holds (a command that
/// moved it to another key) is not handed off, as Redis frees lazily only an object whose
/// reference count is one. Until the thread gets to them, freed bytes still
/// count in `used_memory`; INFO shows `lazyfree_pending_objects` and `lazyfreed_objects`.
///
/// The thread starts with the first hand-off and then sleeps on a semaphore while
/// nothing is queued.
public final class LazyFree: @unchecked Sendable {
    public static let shared = LazyFree()

    /// The lazyfree-lazy-* settings (Config mirrors them).
    public static let onEviction = Atomic<Bool>(false)
    public static let onExpire = Atomic<Bool>(false)
    public static let onServerDelete = Atomic<Bool>(false)
    public static let onUserDelete = Atomic<Bool>(false)
    public static let onUserFlush = Atomic<Bool>(false)

    /// Redis's LAZYFREE_THRESHOLD: below this many elements, freeing at once is cheaper.
    static let threshold = 64

    /// Something to drop; only the lazy-free thread touches it once queued.
    private struct Handed: @unchecked Sendable { let object: AnyObject, objects: Int }
    private let queue = Mutex<[Handed]>([])
    private let queued = Atomic<Int>(0)
    private let freed = Atomic<Int>(0)
    private let started = Atomic<Bool>(false)
    private let wake = Semaphore()

    /// Objects handed off and not yet dropped (INFO lazyfree_pending_objects).
    public var pending: Int { queued.load(ordering: .relaxed) }
    /// Objects the thread has dropped since start (INFO lazyfreed_objects).
    public var freedTotal: Int { freed.load(ordering: .relaxed) }

    /// Frees `entry`'s value on the thread when it is large enough to be worth it (the
    /// entry, already out of its table, is left holding an empty string); else leaves it.
    public func takeValue(of entry: Entry) { take(&entry.value) }

    /// The same for a value an overwrite replaced: `value` is left an empty string.
    public func take(_ value: inout Value) {
        guard LazyFree.largeObject(value) != nil else { return }
        switch value {
        case .list(var l): value = .string(Bytes()); handIfLast(&l)
        case .hash(var h):
            value = .string(Bytes())
            if let table = h.takeTableIfLast() { hand(table) }
        case .set(var s): value = .string(Bytes()); handIfLast(&s)
        case .zset(var z):
            value = .string(Bytes())
            if let index = z.takeIndexIfLast() { hand(index) }
        case .stream(var s): value = .string(Bytes()); handIfLast(&s)
        case .string, .module: break
        }
    }

    /// Hands `object` off when the caller's is its only reference.
    private func handIfLast<T: AnyObject>(_ object: inout T) {
        if isKnownUniquelyReferenced(&object) { hand(object) }
    }

    /// Hands anything to the thread to drop: a value, or a flushed database's key table,
    /// which counts as the `objects` keys it holds.
    public func hand(_ object: AnyObject, objects: Int = 1) {
        let handed = Handed(object: object, objects: objects)
        queue.withLock { $0.append(handed) }
        queued.add(objects, ordering: .relaxed)
        if !started.load(ordering: .acquiring) { start() }
        wake.signal()
    }

    /// The object behind `value` when freeing it would take long.
    static func largeObject(_ value: Value) -> AnyObject? {
        switch value {
        case .list(let l): return l.items.count > threshold ? l : nil
        case .hash(let h): return !h.isPacked && h.count > threshold ? h.tableObject : nil
        case .set(let s): return s.members.count > threshold ? s : nil
        case .zset(let z): return !z.isPacked && z.count > threshold ? z.indexObject : nil
        case .stream(let s): return s.count > threshold ? s : nil
        case .string, .module: return nil
        }
    }

    private func start() {
        guard started.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else { return }
        var thread = pthread_t()
        let me = Unmanaged.passRetained(self).toOpaque()
        pthread_create(&thread, nil, { arg in
            Unmanaged<LazyFree>.fromOpaque(arg!).takeRetainedValue().run()
            return nil
        }, me)
        pthread_detach(thread)
    }

    private func run() {
        while true {
            wake.wait()
            var batch = queue.withLock { q -> [Handed] in
                let taken = q
                q = []
                return taken
            }
            let n = batch.reduce(0) { $0 + $1.objects }
            batch.removeAll()  // the last references, mostly: the memory goes here
            queued.subtract(n, ordering: .relaxed)
            freed.add(n, ordering: .relaxed)
        }
    }
}
