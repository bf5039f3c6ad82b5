import CIntrinsics
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// How recently, or how often, each key was used: what eviction (maxmemory-policy) and
/// OBJECT IDLETIME / OBJECT FREQ go by. Redis's two 24-bit schemes, kept in the high 24
/// bits of each entry's `access` word:
///
/// - LRU (every policy but the LFU ones): a clock in seconds modulo 2^24 (194 days),
///   written when the key is created or looked up. Idle time is the clock now minus it.
/// - LFU (allkeys-lfu, volatile-lfu): the minute (modulo 2^16) the counter last decayed,
///   then an 8-bit logarithmic access counter. An access increments the counter with
///   probability 1 / ((counter - 5) * lfu-log-factor + 1), so it needs about a million
///   accesses to saturate at the default factor; it loses one for each lfu-decay-time
///   minutes without access. New keys start at 5, so they are not the first evicted
///   before they had a chance to be used.
///
/// The clock is the global `seconds`, which each shard's tick refreshes (several times a
/// second, the clock's resolution is one): a lookup pays two relaxed loads and, at most
/// once a second per key under LRU, a store. Switching between the schemes at run time
/// leaves the bits as they were, read the other way until keys are used again, as in
/// Redis.
public enum KeyAccess {
    /// Unix time in seconds (wrapping in 2106; only differences are used).
    public static let seconds = Atomic<UInt32>(UInt32(truncatingIfNeeded: time(nil)))
    /// Whether keys count accesses (an LFU policy) rather than keep a clock.
    public static let countsFrequency = Atomic<Bool>(false)
    /// Whether maxmemory is set with an LRU or LFU policy, under which Redis stops sharing
    /// small integers between keys (each needs its own access bits): OBJECT REFCOUNT.
    public static let sharesNoIntegers = Atomic<Bool>(false)
    /// Whether maxmemory-policy is an LRU or LFU one (set or not maxmemory): then RDB files
    /// carry each key's idle time or counter, as Redis writes them (`Entry.savedAccess`).
    public static let policyRanksAccess = Atomic<Bool>(false)
    /// lfu-log-factor and lfu-decay-time.
    public static let logFactor = Atomic<Int>(10)
    public static let decayMinutes = Atomic<Int>(1)

    static let clockMask: UInt32 = 0xFF_FFFF
    static let initialFrequency: UInt32 = 5

    /// Called by the shards' ticks with the wall clock.
    public static func refreshClock(nowMilliseconds: Int64) {
        let now = UInt32(truncatingIfNeeded: nowMilliseconds / 1000)
        if seconds.load(ordering: .relaxed) != now { seconds.store(now, ordering: .relaxed) }
    }

    @inline(__always)
    static var clock: UInt32 { seconds.load(ordering: .relaxed) & clockMask }

    @inline(__always)
    static var minutes: UInt32 { (seconds.load(ordering: .relaxed) / 60) & 0xFFFF }

    /// The 24 access bits a new key starts with.
    @inline(__always)
    static func initialBits() -> UInt32 {
        countsFrequency.load(ordering: .relaxed) ? minutes << 8 | initialFrequency : clock
    }

    /// Seconds since `bits` (an LRU clock) was written.
    static func idleSeconds(since bits: UInt32) -> Int {
        let now = clock
        return Int(now >= bits ? now - bits : now + (clockMask - bits))
    }

    /// The counter of LFU `bits` after the decay due since its minute.
    static func decayedFrequency(_ bits: UInt32) -> UInt32 {
        let counter = bits & 0xFF, then = bits >> 8, now = minutes
        let elapsed = now >= then ? now - then : 0xFFFF - then + now
        let period = decayMinutes.load(ordering: .relaxed)
        guard period > 0 else { return counter }
        let periods = Int(elapsed) / period
        return periods >= Int(counter) ? 0 : counter - UInt32(periods)
    }

    /// The counter after one more access: logarithmic, so it saturates slowly.
    static func incrementedFrequency(_ counter: UInt32) -> UInt32 {
        if counter == 255 { return 255 }
        let base = Double(counter > initialFrequency ? counter - initialFrequency : 0)
        let p = 1.0 / (base * Double(logFactor.load(ordering: .relaxed)) + 1.0)
        let r = Double(berth_fast_random()) / Double(UInt32.max)
        return r < p ? counter + 1 : counter
    }
}

extension Entry {
    /// Marks the key used now: its clock (LRU) or its counter (LFU).
    @inline(__always)
    public func touch() {
        let word = access.load(ordering: .relaxed)
        if KeyAccess.countsFrequency.load(ordering: .relaxed) {
            touchFrequency(word)
        } else {
            let clock = KeyAccess.clock
            if word >> 8 != clock { access.store(clock << 8 | word & 0xFF, ordering: .relaxed) }
        }
    }

    private func touchFrequency(_ word: UInt32) {
        let counter = KeyAccess.incrementedFrequency(KeyAccess.decayedFrequency(word >> 8))
        let updated = (KeyAccess.minutes << 8 | counter) << 8 | word & 0xFF
        if updated != word { access.store(updated, ordering: .relaxed) }
    }

    /// OBJECT IDLETIME: seconds since the key was last used (LRU bits).
    public var idleSeconds: Int { KeyAccess.idleSeconds(since: access.load(ordering: .relaxed) >> 8) }

    /// OBJECT FREQ: the logarithmic access counter, decayed to now (LFU bits).
    public var frequency: Int { Int(KeyAccess.decayedFrequency(access.load(ordering: .relaxed) >> 8)) }

    /// What an RDB file keeps of the key's use, as Redis writes it: the idle seconds under
    /// an LRU policy, the decayed counter under an LFU one, nothing under the others.
    public var savedAccess: SavedAccess {
        guard KeyAccess.policyRanksAccess.load(ordering: .relaxed) else { return SavedAccess() }
        if KeyAccess.countsFrequency.load(ordering: .relaxed) { return SavedAccess(frequency: frequency) }
        return SavedAccess(idleSeconds: idleSeconds)
    }

    /// Sets the access bits a loaded key carried in its file (RDB's IDLE / FREQ).
    public func restoreAccess(idleSeconds: Int? = nil, frequency: Int? = nil) {
        let tag = access.load(ordering: .relaxed) & 0xFF
        if let f = frequency, KeyAccess.countsFrequency.load(ordering: .relaxed) {
            access.store((KeyAccess.minutes << 8 | UInt32(clamping: f) & 0xFF) << 8 | tag, ordering: .relaxed)
        } else if let idle = idleSeconds, !KeyAccess.countsFrequency.load(ordering: .relaxed) {
            let clock = KeyAccess.clock, back = UInt32(clamping: min(idle, Int(KeyAccess.clockMask)))
            let bits = clock >= back ? clock - back : KeyAccess.clockMask - (back - clock)
            access.store(bits << 8 | tag, ordering: .relaxed)
        }
    }

    /// How good a victim the key is under an LRU or LFU policy: higher goes first.
    public var evictionScore: UInt64 {
        if KeyAccess.countsFrequency.load(ordering: .relaxed) { return UInt64(255 - frequency) }
        return UInt64(idleSeconds)
    }
}

/// A key's use as RDB files carry it (the IDLE and FREQ opcodes before a key); nil fields
/// are absent.
public struct SavedAccess: Sendable, Equatable {
    public var idleSeconds: Int?
    public var frequency: Int?

    public init(idleSeconds: Int? = nil, frequency: Int? = nil) {
        self.idleSeconds = idleSeconds
        self.frequency = frequency
    }
}
