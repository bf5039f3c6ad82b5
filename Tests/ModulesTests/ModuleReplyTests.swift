import RESP
import XCTest
@testable import Modules

/// The module reply tree: postponed lengths, nesting, RESP2/RESP3 shapes.
final class ModuleReplyTests: XCTestCase {
    private func written(_ b: inout ModuleReplyBuilder, resp: Int = 2) -> String {
        let out = IOBuffer(capacity: 64)
        b.write(to: ReplyWriter(buffer: out, protocolVersion: resp))
        return String(decoding: out.readableArray, as: UTF8.self)
    }

    func testFixedAndPostponedArraysNest() {
        var b = ModuleReplyBuilder()
        b.begin(.array, length: nil)          // postponed outer
        b.add(.integer(1))
        b.begin(.array, length: 2)            // fixed inner closes itself
        b.add(.bulk(Bytes("a")))
        b.add(.null)
        b.add(.simple("x"))
        b.setLength(.array, 3)
        XCTAssertEqual(written(&b), "*3\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n+x\r\n")
    }

    func testInnerPostponedIsTheOneSet() {
        var b = ModuleReplyBuilder()
        b.begin(.array, length: nil)
        b.begin(.array, length: nil)
        b.add(.integer(7))
        b.setLength(.array, 1)                // closes the inner one
        b.add(.integer(8))
        b.setLength(.array, 2)
        XCTAssertEqual(written(&b), "*2\r\n*1\r\n:7\r\n:8\r\n")
    }

    func testMapsSetsDoublesAndBooleansByProtocol() {
        func build() -> ModuleReplyBuilder {
            var b = ModuleReplyBuilder()
            b.begin(.map, length: 1)
            b.add(.bulk(Bytes("k")))
            b.begin(.set, length: 2)
            b.add(.double(1.5))
            b.add(.bool(true))
            return b
        }
        var two = build(), three = build()
        XCTAssertEqual(written(&two, resp: 2), "*2\r\n$1\r\nk\r\n*2\r\n$3\r\n1.5\r\n:1\r\n")
        XCTAssertEqual(written(&three, resp: 3), "%1\r\n$1\r\nk\r\n~2\r\n,1.5\r\n#t\r\n")
    }

    func testErrorFirstMarksTheCallFailedAndOpenAggregatesAreFlushed() {
        var b = ModuleReplyBuilder()
        b.add(.error("ERR nope"))
        XCTAssertTrue(b.isError)
        b.begin(.array, length: 3)            // a module bug: never completed
        b.add(.integer(1))
        XCTAssertEqual(written(&b), "-ERR nope\r\n*1\r\n:1\r\n")
        XCTAssertTrue(b.isEmpty)
    }

    func testTakeCompleteLeavesOpenAggregates() {
        var b = ModuleReplyBuilder()
        b.add(.integer(1))
        b.begin(.array, length: 2)
        b.add(.integer(2))
        XCTAssertEqual(b.takeComplete().count, 1)
        b.add(.integer(3))
        XCTAssertEqual(written(&b), "*2\r\n:2\r\n:3\r\n")
    }
}
