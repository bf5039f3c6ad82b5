import RESP
#if canImport(Glibc)
import Glibc
#endif

/// A small blocking RESP client: Berth's own, used by the integration tests and the
/// benchmarks. It speaks to any RESP server.
public final class RESPClient {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }

    private let fd: Int32
    private let input = IOBuffer()
    private let output = IOBuffer()

    public init(host: String = "127.0.0.1", port: Int) throws {
        fd = try RESPClient.connectTCP(host: host, port: port)
    }

    /// A connected blocking TCP socket to a numeric IPv4 `host`, with TCP_NODELAY.
    public static func connectTCP(host: String, port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket failed: \(String(cString: strerror(errno)))") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &addr.sin_addr)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw Failure(description: "connect to \(host):\(port) failed: \(reason)")
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return fd
    }

    deinit { close(fd) }

    /// Sends one command and waits for its reply.
    @discardableResult
    public func call(_ args: Bytes...) throws -> RESPValue {
        try pipeline([args])[0]
    }

    @discardableResult
    public func call(_ args: [String]) throws -> RESPValue {
        try pipeline([args.map { Bytes($0) }])[0]
    }

    /// Sends several commands in one write and reads all their replies, in order.
    public func pipeline(_ commands: [[Bytes]]) throws -> [RESPValue] {
        for c in commands { RESPReplyParser.encode(c, into: output) }
        try sendRaw()
        var replies: [RESPValue] = []
        while replies.count < commands.count { replies.append(try readReply()) }
        return replies
    }

    /// Sends one command without waiting for its reply (a blocking command whose reply
    /// comes later); read it with `readReply`.
    public func send(_ args: [String]) throws {
        RESPReplyParser.encode(args.map { Bytes($0) }, into: output)
        try sendRaw()
    }

    /// Writes raw bytes (protocol tests).
    public func sendRaw(_ bytes: [UInt8]) throws {
        bytes.withUnsafeBytes { output.append($0) }
        try sendRaw()
    }

    private func sendRaw() throws {
        while !output.isEmpty {
            let pending = output.readableBytes
            let n = Glibc.send(fd, pending.baseAddress, pending.count, Int32(MSG_NOSIGNAL))
            guard n > 0 else { throw Failure(description: "send failed") }
            output.consume(n)
        }
    }

    /// Reads the next reply; throws when the server closes the connection.
    public func readReply() throws -> RESPValue {
        while true {
            if let v = RESPReplyParser.parse(input) { return v }
            input.reserve(16 * 1024)
            let n = input.withWritableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw Failure(description: "connection closed") }
        }
    }

    /// True when the server has closed the connection (reads EOF within `timeoutMs`).
    public func isClosedByPeer(timeoutMs: Int32 = 2000) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, timeoutMs) > 0 else { return false }
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, Int32(MSG_PEEK)) == 0
    }
}
