import Commands
import Keyspace
import RESP
import XCTest

/// The Commands target in process: replies byte for byte, for the rules that are easiest
/// to get wrong (what is read before the key, how doubles are written, -0 scores).
final class CommandsTests: XCTestCase {
    /// Redis 7.2's double layout: integers up to 2^62 whole, otherwise shortest digits,
    /// plain down to 1e-6 and scientific beyond, no zero padding in the exponent.
    func testDoublesAreWrittenAsRedis72() {
        let cases: [(Double, String)] = [
            (0.1, "0.1"), (0.00001, "0.00001"), (1.5e-7, "1.5e-7"), (1e21, "1e+21"), (123456.789, "123456.789"),
            (1e16, "10000000000000000"), (5e18, "5e+18"), (4611686018427387904, "4611686018427387904"),
            (-0.0, "-0"), (0, "0"), (-2.5, "-2.5"), (1e-300, "1e-300"), (0.1 + 0.2, "0.30000000000000004"),
            (.infinity, "inf"), (-.infinity, "-inf"), (1.7976931348623157e308, "1.7976931348623157e+308"),
            (123e-10, "1.23e-8"), (0.000123, "0.000123"), (1234567890123456789012, "1234567890123456800000"),
        ]
        for (value, text) in cases {
            XCTAssertEqual(formatDouble(value), text, "\(value)")
        }
    }

    func testBitRangesAreReadBeforeTheKey() {
        let h = CommandHarness()
        XCTAssertEqual(h.run("BITCOUNT", "none", "0", "1", "hello"), "-ERR syntax error\r\n")
        XCTAssertEqual(h.run("BITCOUNT", "none", "a", "b"), "-ERR value is not an integer or out of range\r\n")
        XCTAssertEqual(h.run("BITCOUNT", "none", "0", "1"), ":0\r\n")
        h.run("RPUSH", "l", "x")
        XCTAssertEqual(h.run("BITPOS", "l", "1", "a"), "-ERR value is not an integer or out of range\r\n")
        XCTAssertTrue(h.run("BITPOS", "l", "1", "0").hasPrefix("-WRONGTYPE"))
        h.run("SET", "s", "foobar")
        XCTAssertEqual(h.run("BITCOUNT", "s", "1"), ":22\r\n")  // a start alone counts to the end
        XCTAssertEqual(h.run("BITCOUNT", "s", "-1000"), ":26\r\n")
        XCTAssertEqual(h.run("BITPOS", "s", "0", "1", "2", "3", "BIT", "x"), "-ERR syntax error\r\n")
    }

    /// A small set stores -0 as 0 (Redis's listpack reads it back so); once SORT has read
    /// the set, or it outgrew 128 members, -0 stays -0 (Redis's skiplist keeps the double).
    func testNegativeZeroScoresFollowRedisEncodings() {
        let h = CommandHarness()
        h.run("ZADD", "z", "-0", "a")
        XCTAssertEqual(h.run("ZSCORE", "z", "a"), "$1\r\n0\r\n")
        h.run("SORT", "z")
        h.run("ZADD", "z", "-0", "b")
        XCTAssertEqual(h.run("ZSCORE", "z", "b"), "$2\r\n-0\r\n")
        for i in 0..<128 { h.run("ZADD", "big", "\(i + 1)", "m\(i)") }
        h.run("ZADD", "big", "-0", "last")
        XCTAssertEqual(h.run("ZSCORE", "big", "last"), "$2\r\n-0\r\n")
        h.run("ZADD", "small", "1", "x", "-0", "y")
        XCTAssertEqual(h.run("ZSCORE", "small", "y"), "$1\r\n0\r\n")
    }

    /// In a script, SORT BY a constant orders a set's members; outside one it does not
    /// promise an order (only the members are compared).
    func testSortByConstantOrdersSetsInScripts() {
        let h = CommandHarness()
        let members = ["c", "aaa", "l", "m", "t", "a", "b", "azz", "s", "v", "d"]
        h.run(["SADD", "st"].map { Bytes($0) } + members.map { Bytes($0) })
        h.context.inScript = true
        let sorted = h.run("SORT", "st", "BY", "nosort")
        h.context.inScript = false
        XCTAssertEqual(sorted, "*11\r\n" + members.sorted().map { "$\($0.utf8.count)\r\n\($0)\r\n" }.joined())
        XCTAssertTrue(h.run("SORT", "st", "BY", "nosort").hasPrefix("*11\r\n"))
    }

    /// A woken XREADGROUP answers as XREADGROUP run again would (Redis 7.2).
    func testWokenGroupReadAnswersNoGroupOrWrongType() {
        let h = CommandHarness()
        h.run("XGROUP", "CREATE", "s", "g", "$", "MKSTREAM")
        let op = BlockedOperation.streamGroupRead(group: Bytes("g"), consumer: Bytes("c"), count: nil, noAck: false)
        func serve() -> String {
            let out = IOBuffer(capacity: 64)
            h.context.reply = ReplyWriter(buffer: out, protocolVersion: 2)
            do throws(CommandError) {
                try Blocking.serve(h.context, key: Bytes("s"), op)
            } catch {
                h.context.reply.error(error.message)
            }
            return String(decoding: out.readableArray, as: UTF8.self)
        }
        h.run("DEL", "s")
        XCTAssertEqual(serve(), "-NOGROUP No such key 's' or consumer group 'g' in XREADGROUP with GROUP option\r\n")
        h.run("SET", "s", "x")
        XCTAssertTrue(serve().hasPrefix("-WRONGTYPE"))
    }
}
