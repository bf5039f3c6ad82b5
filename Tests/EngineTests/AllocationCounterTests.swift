import XCTest
import CAllocator
import Foundation
import Synchronization

/// Blocks handed between threads, as addresses; each thread writes only its own row.
private final class Handoff: @unchecked Sendable {
    var rows: [[UInt]]
    init(threads: Int) { rows = Array(repeating: [], count: threads) }
}

/// The allocation counter behind used_memory and maxmemory (CAllocator): exact under many
/// threads that allocate on one thread and free on another, and across threads that end.
/// (Under AddressSanitizer the figure is the sanitizer's, which must pass the same checks.)
final class AllocationCounterTests: XCTestCase {
    func testCountsEveryBlockAcrossThreadsThatAllocateFreeAndEnd() {
        let baseline = Int(berth_allocated_bytes())
        let threads = 16, blocks = 2000
        // Each thread allocates blocks of random sizes, frees half itself and hands the
        // rest to the next thread, which frees them: slots go negative and positive.
        let handoff = Handoff(threads: threads)
        for t in 0..<threads { handoff.rows[t].reserveCapacity(blocks / 2) }
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            var mine: [UnsafeMutableRawPointer] = []
            mine.reserveCapacity(blocks)
            for _ in 0..<blocks { mine.append(malloc(Int.random(in: 1...4096))!) }
            for i in 0..<blocks / 2 { free(mine[i]) }
            for i in blocks / 2..<blocks { handoff.rows[t].append(UInt(bitPattern: mine[i])) }
        }
        let during = Int(berth_allocated_bytes())
        XCTAssertGreaterThan(during - baseline, threads * blocks / 2 * 1)
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            for address in handoff.rows[(t + 1) % threads] { free(UnsafeMutableRawPointer(bitPattern: address)) }
        }
        // Whatever the test machinery allocated meanwhile stays small beside the ~33 MB.
        let after = Int(berth_allocated_bytes())
        XCTAssertLessThan(abs(after - baseline), 1 << 20, "baseline \(baseline), after \(after)")
    }

    func testThreadsThatEndGiveTheirCountsBack() {
        let baseline = Int(berth_allocated_bytes())
        let kept = Mutex<[UInt]>([])
        for _ in 0..<20 {  // more threads over time than stay alive at once
            let t = Thread {
                let p = malloc(100_000)!
                kept.withLock { $0.append(UInt(bitPattern: p)) }
            }
            t.start()
            while !t.isFinished { usleep(1000) }
        }
        XCTAssertGreaterThanOrEqual(Int(berth_allocated_bytes()) - baseline, 20 * 100_000)
        kept.withLock { $0.forEach { free(UnsafeMutableRawPointer(bitPattern: $0)) } }
        XCTAssertLessThan(abs(Int(berth_allocated_bytes()) - baseline), 1 << 20)
    }
}
