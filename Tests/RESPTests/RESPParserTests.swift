import XCTest
@testable import RESP

final class RESPParserTests: XCTestCase {
    private func feed(_ chunks: [[UInt8]], maxBulk: Int = 512 * 1024 * 1024) -> ([[Bytes]], String?) {
        var parser = RESPParser(maxBulkLength: maxBulk)
        let buffer = IOBuffer(capacity: 64)
        var commands: [[Bytes]] = []
        for chunk in chunks {
            chunk.withUnsafeBytes { buffer.append($0) }
            loop: while true {
                switch parser.next(buffer) {
                case .command(let c): commands.append(c)
                case .needMore: break loop
                case .protocolError(let e): return (commands, e)
                }
            }
        }
        return (commands, nil)
    }

    private let pipeline = Array("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\n*1\r\n$4\r\nPING\r\nECHO \"hi there\" 'x y'\r\n*2\r\n$3\r\nGET\r\n$0\r\n\r\n".utf8)
    private let expected: [[Bytes]] = [["SET", "key", "va\r\nl"], ["PING"], ["ECHO", "hi there", "x y"], ["GET", ""]]

    func testWholeBuffer() {
        let (cmds, err) = feed([pipeline])
        XCTAssertNil(err)
        XCTAssertEqual(cmds, expected)
    }

    func testByteByByte() {
        let (cmds, err) = feed(pipeline.map { [$0] })
        XCTAssertNil(err)
        XCTAssertEqual(cmds, expected)
    }

    func testRandomSplits() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            var chunks: [[UInt8]] = []
            var i = 0
            while i < pipeline.count {
                let n = Int.random(in: 1...9, using: &rng)
                chunks.append(Array(pipeline[i..<min(pipeline.count, i + n)]))
                i += n
            }
            let (cmds, err) = feed(chunks)
            XCTAssertNil(err)
            XCTAssertEqual(cmds, expected)
        }
    }

    func testBinarySafeLargeValue() {
        let value = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        var raw = Array("*2\r\n$3\r\nSET\r\n$\(value.count)\r\n".utf8)
        raw += value + [13, 10]
        let (cmds, err) = feed(stride(from: 0, to: raw.count, by: 4096).map { Array(raw[$0..<min(raw.count, $0 + 4096)]) })
        XCTAssertNil(err)
        XCTAssertEqual(cmds.count, 1)
        XCTAssertEqual(cmds[0][1].array, value)
    }

    func testProtocolErrorsMatchRedis() {
        XCTAssertEqual(feed([Array("*abc\r\n".utf8)]).1, "Protocol error: invalid multibulk length")
        XCTAssertEqual(feed([Array("*1\r\n$-5\r\n".utf8)]).1, "Protocol error: invalid bulk length")
        XCTAssertEqual(feed([Array("*1\r\n$100\r\n".utf8)], maxBulk: 10).1, "Protocol error: invalid bulk length")
        XCTAssertEqual(feed([Array("*1\r\n:5\r\n".utf8)]).1, "Protocol error: expected '$', got ':'")
        XCTAssertEqual(feed([Array("SET \"abc\r\n".utf8)]).1, "Protocol error: unbalanced quotes in request")
        XCTAssertEqual(feed([Array(repeating: UInt8(ascii: "a"), count: 70_000)]).1, "Protocol error: too big inline request")
        XCTAssertEqual(feed([Array("*99999999999999999999\r\n".utf8)]).1, "Protocol error: invalid multibulk length")
    }

    func testEmptyAndZeroLengthArraysAreSkipped() {
        let (cmds, err) = feed([Array("\r\n*0\r\n*-1\r\nPING\r\n".utf8)])
        XCTAssertNil(err)
        XCTAssertEqual(cmds, [["PING"]])
    }

    func testInlineEscapes() {
        let (cmds, _) = feed([Array("SET k \"a\\x41\\n\\\"\"\r\n".utf8)])
        XCTAssertEqual(cmds, [["SET", "k", Bytes([97, 65, 10, 34])]])
    }

    func testInlineQuotesOpenInsideAWordAndNulEndsTheLine() {
        let (cmds, err) = feed([Array("GET'x' a\"b c\" PIN'\\''\r\nPI\0NG junk\r\nECHO\u{0B}x\r\n".utf8)])
        XCTAssertNil(err)
        XCTAssertEqual(cmds, [["GETx", "ab c", "PIN'"], ["PI"], [Bytes("ECHO\u{0B}x")]])
        XCTAssertEqual(feed([Array("ECHO h\"i\r\n".utf8)]).1, "Protocol error: unbalanced quotes in request")
        XCTAssertEqual(feed([Array("GET x'\r\n".utf8)]).1, "Protocol error: unbalanced quotes in request")
        XCTAssertEqual(feed([Array("GET \"a\"b\r\n".utf8)]).1, "Protocol error: unbalanced quotes in request")
    }

    func testCountLinesEndAtTheirFirstCarriageReturn() {
        // Redis skips the byte after the CR unread, so "*1\r$4" misreads the next line.
        XCTAssertEqual(feed([Array("*1\r$4\r\nPING\r\n".utf8)]).1, "Protocol error: expected '$', got '4'")
        XCTAssertEqual(feed([Array("*1\r\n$4\rxPING\r\n".utf8)]).0, [["PING"]])
        // The byte after the CR must have arrived before the line counts as read.
        let (cmds, err) = feed([Array("*1\r".utf8), Array("\n$4\r".utf8), Array("\nPING\r\n".utf8)])
        XCTAssertNil(err)
        XCTAssertEqual(cmds, [["PING"]])
    }

    /// Count lines take a one-pass path when they are plain digits followed by CRLF, and
    /// the general one otherwise: both must read a count as `parseDecimal` does.
    func testCountLinesAgreeOnBothPaths() {
        XCTAssertEqual(feed([Array("*2\r\n$1\r\na\r\n$10\r\n0123456789\r\n".utf8)]).0, [["a", "0123456789"]])
        XCTAssertEqual(feed([Array("*1\r\n$0\r\n\r\n".utf8)]).0, [[""]])
        XCTAssertEqual(feed([Array("*01\r\n$4\r\nPING\r\n".utf8)]).1, "Protocol error: invalid multibulk length")
        XCTAssertEqual(feed([Array("*1\r\n$04\r\nPING\r\n".utf8)]).1, "Protocol error: invalid bulk length")
        XCTAssertEqual(feed([Array("*1\r\n$-0\r\n".utf8)]).1, "Protocol error: invalid bulk length")
        XCTAssertEqual(feed([Array("*1\r\n$999999999999999999\r\n".utf8)]).1, "Protocol error: invalid bulk length")
        XCTAssertEqual(feed([Array("*1\r\n$9999999999999999999\r\n".utf8)]).1, "Protocol error: invalid bulk length")
        XCTAssertEqual(feed([Array("*1\r\n$4 \r\nPING\r\n".utf8)]).1, "Protocol error: invalid bulk length")
        // 18 digits, the most the one-pass path takes, are a valid count where the limit allows.
        let (_, huge) = feed([Array("*1\r\n$100000000000000000\r\n".utf8)], maxBulk: Int.max)
        XCTAssertNil(huge)
    }

    func testParseDecimal() {
        func p(_ s: String) -> Int? { Array(s.utf8).withUnsafeBytes { parseDecimal($0) } }
        XCTAssertEqual(p("123"), 123)
        XCTAssertEqual(p("-9223372036854775808"), Int.min)
        XCTAssertNil(p("9223372036854775808"))
        XCTAssertNil(p("012"))
        XCTAssertNil(p("1a"))
        XCTAssertNil(p(""))
        XCTAssertNil(p("-"))
        XCTAssertEqual(p("0"), 0)
        XCTAssertNil(p("-0"), "one spelling per number, as Redis's string2ll")
        XCTAssertNil(p("+1"))
        XCTAssertNil(p(" 1"))
    }
}

final class BytesTests: XCTestCase {
    func testInlineAndHeapEquality() {
        XCTAssertEqual(Bytes.inlineCapacity, 22)
        XCTAssertEqual(MemoryLayout<Bytes>.stride, 24, "a Bytes stays three words")
        // Every length across the inline/heap boundary, built both ways, equal and hashed alike.
        for n in 0...30 {
            let raw = (0..<n).map { UInt8(97 + $0 % 26) }
            let a = Bytes(raw), b = Bytes(String(decoding: raw, as: UTF8.self))
            XCTAssertEqual(a.count, n)
            XCTAssertEqual(a, b)
            XCTAssertEqual(a.hashValue, b.hashValue)
            XCTAssertEqual(a.array, raw)
            if n > 0 {
                var changed = raw
                changed[n - 1] ^= 1
                XCTAssertNotEqual(a, Bytes(changed))
            }
        }
        let long = Bytes("twenty-three-bytes-long")
        XCTAssertEqual(long.count, 23)
        XCTAssertNotEqual(Bytes("a"), Bytes("a\0"))
        XCTAssertEqual(Set([Bytes("x"), Bytes("x"), long, Bytes(long.array)]).count, 2)
    }

    func testLowercasingAndIntegerFormatting() {
        XCTAssertEqual(Bytes("GeT").lowercasedASCII(), Bytes("get"))
        XCTAssertEqual(Bytes("ZRANGEBYSCORE").lowercasedASCII(), Bytes("zrangebyscore"))
        XCTAssertEqual(Bytes("@[`{AZaz09").lowercasedASCII(), Bytes("@[`{azaz09"))
        XCTAssertEqual(Bytes("A-VERY-LONG-COMMAND-NAME").lowercasedASCII(), Bytes("a-very-long-command-name"))
        // 22 bytes: capitals in each inline payload word (8 + 8 + 4 + 2 bytes).
        XCTAssertEqual(Bytes("ABCDEFGHIJKLMNOPQRSTUV").lowercasedASCII(), Bytes("abcdefghijklmnopqrstuv"))
        for c in 0...255 {
            let b = Bytes([UInt8(c)]).lowercasedASCII()
            XCTAssertEqual(b[0], c >= 65 && c <= 90 ? UInt8(c + 32) : UInt8(c))
        }
        for v in [0, 7, -7, 123456789, Int.max, Int.min] { XCTAssertEqual(Bytes(v), Bytes(String(v))) }
    }

    func testModifyChangesInPlaceOnlyWhenUnshared() {
        var grown = Bytes("short")
        grown.modify { $0.append(contentsOf: Array(repeating: UInt8(ascii: "x"), count: 40)) }
        XCTAssertEqual(grown.count, 45)
        XCTAssertEqual(grown.slice(0..<5), Bytes("short"))

        // A unique value keeps its storage: the same buffer before and after.
        var unique = Bytes(Array(repeating: UInt8(7), count: 100))
        let before = unique.withUnsafeBytes { $0.baseAddress }
        unique.modify { $0[3] = 9 }
        XCTAssertEqual(unique.withUnsafeBytes { $0.baseAddress }, before)
        XCTAssertEqual(unique[3], 9)

        // A shared one is copied: the other holder never sees the change.
        var shared = Bytes(Array(repeating: UInt8(1), count: 100))
        let other = shared
        shared.modify { $0[0] = 2 }
        XCTAssertEqual(shared[0], 2)
        XCTAssertEqual(other[0], 1)

        // Shrinking back to the inline size stores it inline and equal to a fresh value.
        var shrunk = Bytes(Array(repeating: UInt8(ascii: "a"), count: 30))
        shrunk.modify { $0.removeLast(25) }
        XCTAssertEqual(shrunk, Bytes("aaaaa"))
    }

    func testOrderingIsMemcmpThenLength() {
        XCTAssertLessThan(Bytes("a"), Bytes("b"))
        XCTAssertLessThan(Bytes("a"), Bytes("aa"))
        XCTAssertLessThan(Bytes([0x7f]), Bytes([0x80]))
        XCTAssertFalse(Bytes("b") < Bytes("a"))
    }
}

final class ReplyWriterTests: XCTestCase {
    private func text(_ version: Int, _ body: (ReplyWriter) -> Void) -> String {
        let b = IOBuffer()
        body(ReplyWriter(buffer: b, protocolVersion: version))
        return String(decoding: b.readableArray, as: UTF8.self)
    }

    func testShapesDifferByProtocol() {
        XCTAssertEqual(text(2) { $0.null() }, "$-1\r\n")
        XCTAssertEqual(text(3) { $0.null() }, "_\r\n")
        XCTAssertEqual(text(2) { $0.mapHeader(2) }, "*4\r\n")
        XCTAssertEqual(text(3) { $0.mapHeader(2) }, "%2\r\n")
        XCTAssertEqual(text(2) { $0.double(1.5) }, "$3\r\n1.5\r\n")
        XCTAssertEqual(text(3) { $0.double(1.5) }, ",1.5\r\n")
        XCTAssertEqual(text(2) { $0.integer(-42) }, ":-42\r\n")
        XCTAssertEqual(text(2) { $0.error("ERR a\nb") }, "-ERR a b\r\n")
    }

    func testDoubleFormatting() {
        XCTAssertEqual(formatDouble(3), "3")
        XCTAssertEqual(formatDouble(10.5), "10.5")
        XCTAssertEqual(formatDouble(.infinity), "inf")
        XCTAssertEqual(formatDouble(-0.0), "-0")  // as C's %.17g prints it
        XCTAssertEqual(formatDouble(-.infinity), "-inf")
        XCTAssertEqual(formatDouble(0.1 + 0.2), "0.30000000000000004")
    }
}

final class IOBufferTests: XCTestCase {
    /// An emptied buffer rewinds to offset 0, except while a receive writes past its end:
    /// the receive's bytes must follow the ones already read.
    func testEmptiedBufferStaysPutUnderAPendingReceive() {
        let b = IOBuffer(capacity: 64)
        b.append("PING\r\n")
        b.consume(6)
        XCTAssertEqual(b.writerIndex, 0)
        b.append("PING\r\n")
        var lent: UnsafeMutableRawBufferPointer?
        b.beginReceive { lent = $0 }  // armed at offset 6
        b.consume(6)
        XCTAssertEqual(b.writerIndex, 6, "a pending receive's offset must not move")
        // The receive completes: the kernel wrote at offset 6.
        let arrived = Array("*1\r\n$4\r\nPING\r\n".utf8)
        lent!.copyBytes(from: arrived)
        b.endReceive(arrived.count)
        var parser = RESPParser(maxBulkLength: 1 << 20)
        guard case .command(let c) = parser.next(b) else { return XCTFail("no command") }
        XCTAssertEqual(c, ["PING"])
    }
}
