import CUring
import RESP
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

// The engine's descriptors, typed. Every socket, eventfd and file the engine opens is a
// swift-system `FileDescriptor`, every failure an `Errno`, and the calls a signal may
// interrupt retry on EINTR here, in one place (`retryingOnInterrupt`), instead of at each
// call site. A raw Int32 appears only where a descriptor crosses into C (the ring's and
// epoll's calls take `rawValue`). Addresses are parsed numerically (no getaddrinfo),
// which keeps the static binary free of NSS.

/// Why a listening socket could not be opened, in the words Redis logs.
struct ListenError: Error, CustomStringConvertible {
    let description: String
}

/// Runs a system call again while a signal interrupts it; its result, or the errno it
/// failed with.
@inline(__always)
func retryingOnInterrupt(_ call: () -> Int) -> Result<Int, Errno> {
    while true {
        let result = call()
        if result >= 0 { return .success(result) }
        let error = Errno(rawValue: errno)
        if error != .interrupted { return .failure(error) }
    }
}

extension FileDescriptor {
    // MARK: listening and accepting

    /// A listening, non-blocking TCP socket on an IPv4 or IPv6 literal address.
    static func listeningSocket(host: String, port: Int, backlog: Int32) throws(ListenError) -> FileDescriptor {
        let isV6 = host.contains(":")
        let raw = socket(isV6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard raw >= 0 else { throw ListenError(description: "socket: \(Errno(rawValue: errno))") }
        let fd = FileDescriptor(rawValue: raw)
        fd.setOption(SOL_SOCKET, SO_REUSEADDR, 1)
        let bound: Result<Int, Errno>
        if isV6 {
            var addr = sockaddr_in6()
            addr.sin6_family = sa_family_t(AF_INET6)
            addr.sin6_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET6, host, &addr.sin6_addr) == 1 else {
                fd.closeQuietly()
                throw ListenError(description: "invalid bind address \(host)")
            }
            bound = fd.bind(&addr)
        } else {
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            let numeric = host == "localhost" ? "127.0.0.1" : host
            guard inet_pton(AF_INET, numeric, &addr.sin_addr) == 1 else {
                fd.closeQuietly()
                throw ListenError(description: "invalid bind address \(host)")
            }
            bound = fd.bind(&addr)
        }
        if case .failure(let error) = bound {
            fd.closeQuietly()
            throw ListenError(description: "Could not create server TCP listening socket \(host):\(port): bind: \(error)")
        }
        guard Glibc.listen(raw, backlog) == 0 else {
            let error = Errno(rawValue: errno)
            fd.closeQuietly()
            throw ListenError(description: "listen: \(error)")
        }
        return fd
    }

    private func bind<Address>(_ address: inout Address) -> Result<Int, Errno> {
        let raw = rawValue
        return withUnsafePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                retryingOnInterrupt { Int(Glibc.bind(raw, sa, socklen_t(MemoryLayout<Address>.size))) }
            }
        }
    }

    /// The next connection waiting on this listening socket, non-blocking and
    /// close-on-exec; nil when none is waiting (or accept failed).
    func acceptConnection() -> FileDescriptor? {
        let raw = berth_accept(rawValue)
        return raw >= 0 ? FileDescriptor(rawValue: raw) : nil
    }

    // MARK: client sockets

    /// Options every client socket gets: no Nagle delay, and keepalive probes when configured.
    func configureClient(keepAliveSeconds: Int) {
        setOption(Int32(IPPROTO_TCP), TCP_NODELAY, 1)
        guard keepAliveSeconds > 0 else { return }
        setOption(SOL_SOCKET, SO_KEEPALIVE, 1)
        setOption(Int32(IPPROTO_TCP), TCP_KEEPIDLE, Int32(keepAliveSeconds))
        setOption(Int32(IPPROTO_TCP), TCP_KEEPINTVL, Int32(max(1, keepAliveSeconds / 3)))
        setOption(Int32(IPPROTO_TCP), TCP_KEEPCNT, 3)
    }

    private func setOption(_ level: Int32, _ name: Int32, _ value: Int32) {
        var value = value
        _ = setsockopt(rawValue, level, name, &value, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Receives into `buffer`'s free space: the count (0 when the peer closed), or the
    /// errno (`.wouldBlock` when nothing is there).
    func receive(into buffer: IOBuffer) -> Result<Int, Errno> {
        var result: Result<Int, Errno> = .success(0)
        _ = buffer.withWritableBytes { room in
            result = retryingOnInterrupt { recv(rawValue, room.baseAddress, room.count, 0) }
            if case .success(let n) = result { return n }
            return 0
        }
        return result
    }

    /// Sends `bytes` (never raising SIGPIPE): the count sent, or the errno.
    func send(_ bytes: UnsafeRawBufferPointer) -> Result<Int, Errno> {
        retryingOnInterrupt { Glibc.send(rawValue, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Ends both directions at once: a pending receive completes, the peer sees EOF.
    func shutdownBoth() { _ = Glibc.shutdown(rawValue, Int32(SHUT_RDWR)) }

    /// Closes a descriptor the engine is done with; a failure (EINTR, EIO on a socket)
    /// leaves nothing to retry or report, since the descriptor is released either way.
    func closeQuietly() { try? close() }

    static func peerName(of fd: FileDescriptor) -> String { fd.address(peer: true) }
    static func localName(of fd: FileDescriptor) -> String { fd.address(peer: false) }

    private func address(peer: Bool) -> String {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let raw = rawValue
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { peer ? getpeername(raw, $0, &length) : getsockname(raw, $0, &length) }
        }
        guard rc == 0 else { return "?:0" }
        var text = [CChar](repeating: 0, count: 64)
        if storage.ss_family == sa_family_t(AF_INET6) {
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { p in
                    var a = p.pointee.sin6_addr
                    inet_ntop(AF_INET6, &a, &text, 64)
                    return "\(nulTerminated(text)):\(UInt16(bigEndian: p.pointee.sin6_port))"
                }
            }
        }
        return withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { p in
                var a = p.pointee.sin_addr
                inet_ntop(AF_INET, &a, &text, 64)
                return "\(nulTerminated(text)):\(UInt16(bigEndian: p.pointee.sin_port))"
            }
        }
    }

    // MARK: a shard's wake-up counter

    /// A non-blocking eventfd: other threads bump it to wake a shard's event loop.
    static func wakeCounter() -> FileDescriptor { FileDescriptor(rawValue: berth_eventfd()) }

    /// Adds one to the counter (any thread).
    func signalWake() {
        var one: UInt64 = 1
        _ = retryingOnInterrupt { Glibc.write(rawValue, &one, 8) }
    }

    /// Resets the counter (the owning shard's thread).
    func drainWake() {
        var counter: UInt64 = 0
        _ = retryingOnInterrupt { Glibc.read(rawValue, &counter, 8) }
    }
}

/// The text of a C string buffer up to its terminating NUL.
private func nulTerminated(_ buf: [CChar]) -> String {
    String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
