import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The systemd service notification protocol (what sd_notify(3) does): newline-separated
/// `KEY=value` assignments sent as one datagram to the AF_UNIX socket named by
/// `$NOTIFY_SOCKET` (a leading `@` names an abstract socket). Without that variable,
/// as outside a `Type=notify` unit, every call does nothing.
enum SystemdNotify {
    /// Sends `assignments` (e.g. "READY=1\nSTATUS=..."); returns false when not sent.
    @discardableResult
    static func send(_ assignments: String) -> Bool {
        guard let raw = getenv("NOTIFY_SOCKET") else { return false }
        var path = Array(String(cString: raw).utf8)
        guard path.count > 1 else { return false }
        if path[0] == UInt8(ascii: "@") { path[0] = 0 }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard path.count < capacity else { return false }
        withUnsafeMutableBytes(of: &addr.sun_path) { dst in
            for (i, b) in path.enumerated() { dst[i] = b }
        }
        let socketFD = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard socketFD >= 0 else { return false }
        let fd = FileDescriptor(rawValue: socketFD)
        defer { fd.closeQuietly() }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count)
        let message = Array(assignments.utf8)
        let sent = withUnsafePointer(to: &addr) { a in
            a.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                message.withUnsafeBytes { bytes in
                    retryingOnInterrupt { sendto(socketFD, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), sa, length) }
                }
            }
        }
        return (try? sent.get()) == message.count
    }
}
