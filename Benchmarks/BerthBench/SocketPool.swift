import BerthClient
import RESP
#if canImport(Glibc)
import Glibc
#endif

/// Many plain TCP connections driven by one thread through poll(2): enough to block
/// thousands of clients at once and time each one's reply.
final class SocketPool {
    struct Failure: Error, CustomStringConvertible { let description: String }

    private var fds: [Int32] = []

    init(host: String, port: Int, count: Int) throws {
        Self.raiseFileLimit(to: count + 256)
        for i in 0..<count {
            do {
                fds.append(try RESPClient.connectTCP(host: host, port: port))
            } catch {
                closeAll()
                throw Failure(description: "after \(i) connections: \(error)")
            }
        }
    }

    static func raiseFileLimit(to wanted: Int) {
        var lim = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
        if lim.rlim_cur < rlim_t(wanted) {
            lim.rlim_cur = min(lim.rlim_max, rlim_t(wanted))
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
        }
    }

    func send(_ i: Int, _ args: [String]) throws {
        var out = "*\(args.count)\r\n"
        for a in args { out += "$\(a.utf8.count)\r\n\(a)\r\n" }
        let bytes = Array(out.utf8)
        let n = bytes.withUnsafeBytes { Glibc.send(fds[i], $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard n == bytes.count else { throw Failure(description: "short send") }
    }

    /// Waits until every connection received exactly `expect`; returns each one's arrival time.
    func awaitReplies(expect: String, deadlineSeconds: Double) throws -> [UInt64] {
        let want = Array(expect.utf8)
        var got = [[UInt8]](repeating: [], count: fds.count)
        var arrivals = [UInt64](repeating: 0, count: fds.count)
        var remaining = fds.count
        var polled = fds.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let end = nowNanos() + UInt64(deadlineSeconds * 1e9)
        while remaining > 0 {
            guard nowNanos() < end else { throw Failure(description: "\(remaining) replies never came") }
            let n = poll(&polled, nfds_t(polled.count), 100)
            guard n > 0 else { continue }
            let now = nowNanos()
            for i in polled.indices where polled[i].revents != 0 {
                polled[i].revents = 0
                let r = buffer.withUnsafeMutableBytes { recv(fds[i], $0.baseAddress, $0.count, 0) }
                guard r > 0 else { throw Failure(description: "connection \(i) closed") }
                got[i].append(contentsOf: buffer[0..<r])
                if got[i].count >= want.count && arrivals[i] == 0 {
                    guard got[i] == want else { throw Failure(description: "unexpected reply \(String(decoding: got[i], as: UTF8.self))") }
                    arrivals[i] = now
                    remaining -= 1
                    polled[i].fd = -1
                }
            }
        }
        return arrivals
    }

    func closeAll() {
        for fd in fds { close(fd) }
        fds = []
    }
}
