import RESP
import XCTest
@testable import Engine

/// The raw scan that finds the keys of pipelined commands to prefetch (BatchPrefetch.swift).
final class BatchPrefetchTests: XCTestCase {
    private func buffer(_ text: String) -> IOBuffer {
        let b = IOBuffer(capacity: 64)
        b.append(text)
        return b
    }

    func testFindsEachCommandsFirstArgumentAndEnd() {
        let get = "*2\r\n$3\r\nGET\r\n$5\r\nkey:1\r\n"
        let set = "*3\r\n$3\r\nSET\r\n$0\r\n\r\n$2\r\nv1\r\n"
        let b = buffer(get + set + "*1\r\n$4\r\nPING\r\n")
        guard let (k1, e1) = RawCommandScan.firstArgument(b, from: 0) else { return XCTFail("GET not scanned") }
        XCTAssertEqual(k1, Bytes("key:1"))
        XCTAssertEqual(e1, get.utf8.count)
        guard let (k2, e2) = RawCommandScan.firstArgument(b, from: e1) else { return XCTFail("SET not scanned") }
        XCTAssertEqual(k2, Bytes(""))
        XCTAssertEqual(e2, e1 + set.utf8.count)
        guard let (k3, e3) = RawCommandScan.firstArgument(b, from: e2) else { return XCTFail("PING not scanned") }
        XCTAssertNil(k3, "a command without arguments has no key")
        XCTAssertEqual(e3, b.writerIndex)
        XCTAssertNil(RawCommandScan.firstArgument(b, from: e3), "nothing after the last command")
    }

    func testStartsAtTheReaderIndex() {
        let b = buffer("*2\r\n$3\r\nGET\r\n$1\r\na\r\n*2\r\n$3\r\nGET\r\n$1\r\nb\r\n")
        b.consume(20)
        XCTAssertEqual(RawCommandScan.firstArgument(b, from: b.readerIndex)?.0, Bytes("b"))
    }

    func testGivesUpOnAnythingButOneCompleteCommand() {
        let whole = "*3\r\n$3\r\nSET\r\n$3\r\nabc\r\n$3\r\nxyz\r\n"
        // Every proper prefix is incomplete.
        for n in 0..<whole.utf8.count {
            let b = buffer(String(decoding: whole.utf8.prefix(n), as: UTF8.self))
            XCTAssertNil(RawCommandScan.firstArgument(b, from: 0), "prefix of \(n) bytes")
        }
        for bad in ["GET a\r\n", "*x\r\n", "*2\r\n+GET\r\n", "*2\r\n$-1\r\n", "*0\r\n", "*2\r\n$3\r\nGET\r\n$99999999999\r\n",
                    "*2\r\n$3\rxGET\r\n$1\r\na\r\n", "*65" + String(repeating: "\r\n$1\r\na", count: 65) + "\r\n"] {
            XCTAssertNil(RawCommandScan.firstArgument(buffer(bad), from: 0), bad.debugDescription)
        }
    }

    func testLongKeysAreSkippedButTheCommandIsStillStepped() {
        let key = String(repeating: "k", count: Bytes.inlineCapacity + 1)
        let cmd = "*2\r\n$3\r\nGET\r\n$\(key.utf8.count)\r\n\(key)\r\n"
        let b = buffer(cmd)
        guard let (k, end) = RawCommandScan.firstArgument(b, from: 0) else { return XCTFail("not scanned") }
        XCTAssertNil(k)
        XCTAssertEqual(end, cmd.utf8.count)
    }
}
