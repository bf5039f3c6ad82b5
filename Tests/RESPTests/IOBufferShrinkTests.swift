import XCTest
@testable import RESP

final class IOBufferShrinkTests: XCTestCase {
    /// A buffer a burst made large gives its storage back once empty, and only then.
    func testShrinkIfEmptyGivesBackOnlyAnEmptyBuffer() {
        let b = IOBuffer(capacity: 1024)
        b.append(UnsafeRawBufferPointer(start: [UInt8](repeating: 7, count: 40_000), count: 40_000))
        XCTAssertGreaterThanOrEqual(b.capacity, 40_000)
        b.shrinkIfEmpty(to: 1024)
        XCTAssertGreaterThanOrEqual(b.capacity, 40_000, "bytes still unread: the storage stays")
        b.consume(b.readableCount)
        b.shrinkIfEmpty(to: 1024)
        XCTAssertEqual(b.capacity, 1024)
        XCTAssertTrue(b.isEmpty)
        // Within twice the target it keeps what it has (no reallocation for a few bytes).
        b.reserve(1500)
        let capacity = b.capacity
        b.shrinkIfEmpty(to: 1024)
        XCTAssertEqual(b.capacity, capacity)
    }

    /// Storage lent to a pending receive never moves.
    func testShrinkIfEmptyLeavesAPendingReceiveAlone() {
        let b = IOBuffer(capacity: 8192)
        b.beginReceive { _ in }
        b.shrinkIfEmpty(to: 512)
        XCTAssertEqual(b.capacity, 8192)
        b.endReceive(0)
        b.shrinkIfEmpty(to: 512)
        XCTAssertEqual(b.capacity, 512)
    }
}
