import XCTest
@testable import Engine
#if canImport(Glibc)
import Glibc
#endif

/// The clock that times commands for INFO commandstats (CommandClock.swift).
final class CommandClockTests: XCTestCase {
    /// Over one interval the command clock and CLOCK_MONOTONIC agree: a wrong cycle scale
    /// (or a counter that is not a clock) would make every commandstats figure wrong by
    /// the same factor. The interval is long so that a preemption between the paired
    /// reads cannot move the ratio much.
    func testAgreesWithTheMonotonicClock() {
        let clock = CommandClock.shared
        let (c0, m0) = (clock.microseconds(), monotonicMicroseconds())
        usleep(300_000)
        let (c1, m1) = (clock.microseconds(), monotonicMicroseconds())
        let ratio = Double(c1 - c0) / Double(m1 - m0)
        XCTAssertGreaterThan(ratio, 0.8, "command clock ran slow: \(c1 - c0) us against \(m1 - m0) us")
        XCTAssertLessThan(ratio, 1.25, "command clock ran fast: \(c1 - c0) us against \(m1 - m0) us")
    }

    func testFallsBackToClockGettimeWithoutAScale() {
        let fallback = CommandClock(scale: 0)
        let before = monotonicMicroseconds()
        let t = fallback.microseconds()
        XCTAssertGreaterThanOrEqual(t, before)
        XCTAssertLessThanOrEqual(t, monotonicMicroseconds())
    }
}
