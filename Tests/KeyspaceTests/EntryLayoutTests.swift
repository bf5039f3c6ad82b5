import XCTest
import RESP
@testable import Keyspace

final class EntryLayoutTests: XCTestCase {
    /// Entry's fields, in its order, as a struct: with the 16-byte object header it must stay
    /// 88 bytes (a snapshot's `savedEpoch` shares a word with the access bits and hash tag,
    /// an `Atomic<UInt32>`, laid out as a UInt32), or every key costs a
    /// malloc size class more.
    func testEntryFieldsLeaveNoPadding() {
        struct Mirror {
            let key: Bytes
            var value: Value
            var savedEpoch: UInt32
            let access: UInt32
            var expireAt: Int64
            var next: Entry?
        }
        XCTAssertEqual(MemoryLayout<Mirror>.size + 16, 88)
    }
}
