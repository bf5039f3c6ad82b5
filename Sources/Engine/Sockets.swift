import CUring
#if canImport(Glibc)
import Glibc
#endif

/// Thin socket helpers. Addresses are parsed numerically (no getaddrinfo), which keeps the
/// static binary free of NSS.
enum Sockets {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// A listening TCP socket on an IPv4 or IPv6 literal address.
    static func listen(host: String, port: Int, backlog: Int32) throws -> Int32 {
        let isV6 = host.contains(":")
        let fd = socket(isV6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, 4)
        var rc: Int32
        if isV6 {
            var addr = sockaddr_in6()
            addr.sin6_family = sa_family_t(AF_INET6)
            addr.sin6_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET6, host, &addr.sin6_addr) == 1 else { Glibc.close(fd); throw Failure(description: "invalid bind address \(host)") }
            rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        } else {
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            let h = host == "localhost" ? "127.0.0.1" : host
            guard inet_pton(AF_INET, h, &addr.sin_addr) == 1 else { Glibc.close(fd); throw Failure(description: "invalid bind address \(host)") }
            rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
        guard rc == 0 else {
            let msg = String(cString: strerror(errno))
            Glibc.close(fd)
            throw Failure(description: "Could not create server TCP listening socket \(host):\(port): bind: \(msg)")
        }
        guard Glibc.listen(fd, backlog) == 0 else { Glibc.close(fd); throw Failure(description: "listen: \(String(cString: strerror(errno)))") }
        return fd
    }

    /// Options every client socket gets: no Nagle delay, and keepalive probes when configured.
    static func configureClient(_ fd: Int32, keepAliveSeconds: Int) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, 4)
        if keepAliveSeconds > 0 {
            setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, 4)
            var idle = Int32(keepAliveSeconds)
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPIDLE, &idle, 4)
            var interval = Int32(max(1, keepAliveSeconds / 3))
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPINTVL, &interval, 4)
            var count: Int32 = 3
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPCNT, &count, 4)
        }
    }

    static func peerName(_ fd: Int32) -> String { address(fd, peer: true) }
    static func localName(_ fd: Int32) -> String { address(fd, peer: false) }

    private static func address(_ fd: Int32, peer: Bool) -> String {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { peer ? getpeername(fd, $0, &len) : getsockname(fd, $0, &len) }
        }
        guard rc == 0 else { return "?:0" }
        var buf = [CChar](repeating: 0, count: 64)
        if storage.ss_family == sa_family_t(AF_INET6) {
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { p in
                    var a = p.pointee.sin6_addr
                    inet_ntop(AF_INET6, &a, &buf, 64)
                    return "\(nulTerminated(buf)):\(UInt16(bigEndian: p.pointee.sin6_port))"
                }
            }
        }
        return withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { p in
                var a = p.pointee.sin_addr
                inet_ntop(AF_INET, &a, &buf, 64)
                return "\(nulTerminated(buf)):\(UInt16(bigEndian: p.pointee.sin_port))"
            }
        }
    }
}

/// The text of a C string buffer up to its terminating NUL.
private func nulTerminated(_ buf: [CChar]) -> String {
    String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

@inline(__always) func berthAccept(_ fd: Int32) -> Int32 { berth_accept(fd) }
