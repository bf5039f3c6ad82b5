/// INFO latencystats: per-command latency percentiles, `latency_percentiles_usec_<cmd>:
/// p50=...,p99=...,p99.9=...`, for the percentiles `latency-tracking-info-percentiles`
/// names, while `latency-tracking` is on (Redis 7's defaults: on, "50 99 99.9").
///
/// Each shard records the commands it runs in histograms of its own (`CommandLatencies`),
/// so recording takes no lock and touches one counter: a bucket index from the duration's
/// leading-zero count, then an increment. INFO sums the shards' histograms and reads the
/// percentiles from the sum. CONFIG RESETSTAT clears them (on each shard's thread).
///
/// The histogram is log-linear over microseconds: values below 128 µs have a bucket
/// each; above, each power of two is split into 128 equal buckets, so a bucket's width is
/// under 1% of its values (Redis's histograms keep 2 significant digits). A percentile is
/// reported as the highest value of the bucket where the cumulative count reaches that
/// percentile of all samples, as Redis reports it.
///
/// A module command that blocks is recorded when its client's wait ends, with its own run
/// plus the background time the module measured (BlockedClientMeasureTimeStart/End), as
/// Redis records it at unblock. Commands called through a module's Call are recorded too.
enum LatencyHistogram {
    static let subBucketBits = 7
    static let subBuckets = 1 << subBucketBits
    /// Durations are clamped to 2^40 µs (about 12 days).
    static let maxExponent = 40
    static let bucketCount = (maxExponent - subBucketBits + 1) * subBuckets + subBuckets

    @inline(__always)
    static func bucket(of microseconds: Int) -> Int {
        let v = UInt64(clamping: max(0, min(microseconds, 1 << maxExponent)))
        if v < UInt64(subBuckets) { return Int(v) }
        let exponent = 63 - v.leadingZeroBitCount  // >= subBucketBits
        let shift = exponent - subBucketBits
        return (shift + 1) * subBuckets + Int(v >> UInt64(shift)) - subBuckets
    }

    /// The highest duration that falls in `bucket`.
    static func highestValue(inBucket bucket: Int) -> Int {
        if bucket < subBuckets { return bucket }
        let shift = bucket / subBuckets - 1
        let mantissa = bucket % subBuckets + subBuckets
        return ((mantissa + 1) << shift) - 1
    }

    /// The value at `percentile` (0...100) of the samples counted in `counts`.
    static func value(atPercentile percentile: Double, of counts: [UInt64]) -> Int {
        let total = counts.reduce(0, +)
        guard total > 0 else { return 0 }
        let wanted = max(1, UInt64((min(percentile, 100) / 100 * Double(total)).rounded()))
        var seen: UInt64 = 0
        for (i, c) in counts.enumerated() where c > 0 {
            seen += c
            if seen >= wanted { return highestValue(inBucket: i) }
        }
        return highestValue(inBucket: counts.count - 1)
    }

    /// A percentile as Redis prints it: six decimals at most, trailing zeros (and a bare
    /// point) trimmed: 50 -> "50", 99.9 -> "99.9".
    static func name(_ percentile: Double) -> String {
        var s = String((percentile * 1_000_000).rounded() / 1_000_000)
        if s.contains(".") && !s.contains("e") {
            while s.hasSuffix("0") { s.removeLast() }
            if s.hasSuffix(".") { s.removeLast() }
        }
        return s
    }

    /// The INFO line of one command.
    static func line(command: String, counts: [UInt64], percentiles: [Double]) -> (String, String) {
        let fields = percentiles.map { p in
            // Whole microseconds, in Redis's three-decimal form.
            "p\(name(p))=\(value(atPercentile: p, of: counts)).000"
        }
        return ("latency_percentiles_usec_\(command)", fields.joined(separator: ","))
    }
}

/// One shard's latency histograms, by command statistics id; a command's histogram is
/// allocated when the command first runs on the shard.
///
/// Invariants: only the owning shard's thread records, resets or snapshots (INFO gathers
/// on each shard's thread), so nothing is shared. `tables[i]` is nil or points at
/// `LatencyHistogram.bucketCount` counters owned by this object.
package final class CommandLatencies {
    private let count: Int
    private let tables: UnsafeMutablePointer<UnsafeMutablePointer<UInt64>?>

    init(commandCount: Int) {
        count = commandCount
        tables = .allocate(capacity: commandCount)
        tables.initialize(repeating: nil, count: commandCount)
    }

    deinit {
        for i in 0..<count { tables[i]?.deallocate() }
        tables.deallocate()
    }

    @inline(__always)
    package func record(_ command: Int, microseconds: Int) {
        guard command >= 0 && command < count else { return }
        let table = tables[command] ?? allocate(command)
        table[LatencyHistogram.bucket(of: microseconds)] &+= 1
    }

    private func allocate(_ command: Int) -> UnsafeMutablePointer<UInt64> {
        let table = UnsafeMutablePointer<UInt64>.allocate(capacity: LatencyHistogram.bucketCount)
        table.initialize(repeating: 0, count: LatencyHistogram.bucketCount)
        tables[command] = table
        return table
    }

    /// Copies of the histograms of the commands recorded since the last reset.
    func snapshot() -> [Int: [UInt64]] {
        var out: [Int: [UInt64]] = [:]
        for i in 0..<count {
            if let t = tables[i] { out[i] = Array(UnsafeBufferPointer(start: t, count: LatencyHistogram.bucketCount)) }
        }
        return out
    }

    func reset() {
        for i in 0..<count {
            tables[i]?.deallocate()
            tables[i] = nil
        }
    }
}
