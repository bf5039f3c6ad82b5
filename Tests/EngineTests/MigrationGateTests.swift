import Synchronization
import XCTest
@testable import Engine

/// The gate between client moves and CLIENT LIST / KILL walks (ClientMigration.swift).
final class MigrationGateTests: XCTestCase {
    func testAMoveBacksOffWhileAWalkIsAnnounced() {
        let gate = MigrationGate()
        XCTAssertTrue(gate.isSettled)
        XCTAssertTrue(gate.beginMove())
        XCTAssertFalse(gate.isSettled, "a move is in flight")
        gate.announceWalk()
        XCTAssertFalse(gate.isSettled, "the walk waits for the move")
        XCTAssertFalse(gate.beginMove(), "no new move while a walk is announced")
        gate.endMove()
        XCTAssertTrue(gate.isSettled)
        gate.endWalk()
        XCTAssertTrue(gate.beginMove())
        gate.endMove()
    }

    /// Eight threads move and walk at random. A walk, once started, must never overlap a
    /// move in flight; every walk must get to start (moves cannot starve it).
    func testWalksNeverOverlapMovesUnderStress() {
        let gate = MigrationGate()
        let inFlight = Atomic<Int>(0)
        let walksRunning = Atomic<Int>(0)
        let overlaps = Atomic<Int>(0)
        let moves = Atomic<Int>(0)
        let walks = Atomic<Int>(0)
        let refusedMoves = Atomic<Int>(0)
        let threads = (0..<8).map { t in
            spawnThread {
                var rng = SystemRandomNumberGenerator()
                for _ in 0..<20_000 {
                    if Int.random(in: 0..<32, using: &rng) == 0 {
                        gate.announceWalk()
                        while !gate.isSettled { sched_yield() }
                        walksRunning.add(1, ordering: .sequentiallyConsistent)
                        for _ in 0..<Int.random(in: 1...20, using: &rng) {
                            if inFlight.load(ordering: .sequentiallyConsistent) != 0 { overlaps.add(1, ordering: .relaxed) }
                        }
                        walksRunning.subtract(1, ordering: .sequentiallyConsistent)
                        walks.add(1, ordering: .relaxed)
                        gate.endWalk()
                    } else if gate.beginMove() {
                        inFlight.add(1, ordering: .sequentiallyConsistent)
                        if walksRunning.load(ordering: .sequentiallyConsistent) != 0 { overlaps.add(1, ordering: .relaxed) }
                        if t % 2 == 0 { sched_yield() }
                        inFlight.subtract(1, ordering: .sequentiallyConsistent)
                        moves.add(1, ordering: .relaxed)
                        gate.endMove()
                    } else {
                        refusedMoves.add(1, ordering: .relaxed)
                    }
                }
            }
        }
        for t in threads { pthread_join(t, nil) }
        XCTAssertEqual(overlaps.load(ordering: .relaxed), 0)
        XCTAssertGreaterThan(moves.load(ordering: .relaxed), 100)
        XCTAssertGreaterThan(walks.load(ordering: .relaxed), 100)
        XCTAssertEqual(moves.load(ordering: .relaxed) + walks.load(ordering: .relaxed)
                       + refusedMoves.load(ordering: .relaxed), 8 * 20_000)
        XCTAssertTrue(gate.isSettled)
    }
}
