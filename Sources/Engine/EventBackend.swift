import SystemPackage

/// The event loop interface a shard runs on: io_uring where the kernel allows it, epoll
/// otherwise. Both deliver the same callbacks, so everything above them is shared.
package protocol EventBackend: AnyObject {
    var name: String { get }
    /// Accept connections on `fd` (shard 0 only).
    func addListener(_ fd: FileDescriptor)
    /// Accept on `fd` from now on, and stop accepting on the current listener, which this
    /// shuts down and closes (CONFIG SET port/bind; shard 0 only).
    func replaceListener(with fd: FileDescriptor)
    /// Start reading from a new connection.
    func register(_ conn: Connection)
    /// Make sure the connection's pending output gets written.
    func flush(_ conn: Connection)
    /// Close the connection once no operation on it is in flight.
    func close(_ conn: Connection)
    /// Wait up to `timeoutMicros` for events and dispatch them to the handler. The
    /// microseconds let blocked clients' deadlines fire on time, not a tick late.
    func poll(timeoutMicros: Int)
    /// Serves other connections without waiting, from inside a long command of `active`
    /// on this thread (a busy script): reads, replies and accepts go on; `active`'s own
    /// events, the inbox, and the shard's bookkeeping of closed connections wait for the
    /// next `poll`.
    func pollNested(skipping active: Connection)
}

/// What a backend reports to its shard.
protocol EventHandler: AnyObject {
    func accepted(fd: FileDescriptor)
    /// New bytes are in `conn.input`.
    func received(_ conn: Connection)
    /// The inbox eventfd fired.
    func woken()
    /// The inbox eventfd fired during a nested poll (a long command running): only what
    /// takes no lock may be handled now (new connections).
    func wokenNested()
    /// The backend is about to wait for events: replies held back must go out now.
    func beforeWaiting()
    /// The connection's fd is closed and the backend has forgotten it.
    func closed(_ conn: Connection)
    /// A connection marked to move (`moveTo`) has nothing in flight: may it go now? On
    /// false the mark is gone and the backend serves the connection on.
    func claimMove(_ conn: Connection) -> Bool
    /// The backend has forgotten a connection whose move was claimed; its fd stays open
    /// for the shard it moves to.
    func detached(_ conn: Connection)
}
