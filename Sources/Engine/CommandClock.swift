import CIntrinsics
#if canImport(Glibc)
import Glibc
#endif

/// The clock that times every command for INFO commandstats (`usec`, `usec_per_call`).
///
/// A shard reads it once per command, so its cost counts: clock_gettime takes tens of
/// nanoseconds even through the vDSO, a few percent of a pipelined GET. Where the CPU's
/// time-stamp counter ticks at one constant rate on every core and through sleep states
/// (x86-64 with the `constant_tsc` and `nonstop_tsc` flags, as Redis checks too), the
/// clock reads that counter instead and scales it to microseconds with one widening
/// multiply. The scale is measured once per process against CLOCK_MONOTONIC. Elsewhere it
/// is clock_gettime. Either way readings are microseconds on a monotonic clock whose epoch
/// is arbitrary: callers only subtract them.
struct CommandClock: Sendable {
    /// Microseconds per counter tick as a 32.32 fixed-point number; 0: use clock_gettime.
    let scale: UInt64

    static let shared = CommandClock.calibrated()

    @inline(__always)
    func microseconds() -> Int {
        if scale == 0 { return monotonicMicroseconds() }
        let (high, low) = berth_cycles().multipliedFullWidth(by: scale)
        return Int(truncatingIfNeeded: high << 32 | low >> 32)
    }

    private static func calibrated() -> CommandClock {
        guard berth_has_cycle_counter() != 0, counterIsSteady() else { return CommandClock(scale: 0) }
        let (c0, t0) = (berth_cycles(), monotonicNanoseconds())
        var pause = timespec(tv_sec: 0, tv_nsec: 20_000_000), left = timespec()
        while nanosleep(&pause, &left) != 0 { pause = left }
        let (c1, t1) = (berth_cycles(), monotonicNanoseconds())
        guard c1 > c0, t1 > t0 else { return CommandClock(scale: 0) }
        let microsecondsPerCycle = Double(t1 - t0) / 1000 / Double(c1 - c0)
        return CommandClock(scale: UInt64(microsecondsPerCycle * 4_294_967_296))
    }

    /// Whether /proc/cpuinfo lists both flags that make the time-stamp counter a clock.
    private static func counterIsSteady() -> Bool {
        guard let f = fopen("/proc/cpuinfo", "r") else { return false }
        defer { fclose(f) }
        var line = [CChar](repeating: 0, count: 8192)
        while fgets(&line, Int32(line.count), f) != nil {
            let text = String(cString: line)
            guard text.hasPrefix("flags") else { continue }
            let flags = Set(text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }))
            return flags.contains("constant_tsc") && flags.contains("nonstop_tsc")
        }
        return false
    }

    private static func monotonicNanoseconds() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return ts.tv_sec * 1_000_000_000 + ts.tv_nsec
    }
}
