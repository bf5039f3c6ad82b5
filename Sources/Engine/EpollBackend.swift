import CUring
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The epoll event loop: level-triggered reads, writes straight from the output buffer,
/// EPOLLOUT only while a write could not finish.
final class EpollBackend: EventBackend {
    let name = "epoll"
    private let epfd: FileDescriptor
    private let wakeFD: FileDescriptor
    private var listenFD: FileDescriptor?
    private var connections: [FileDescriptor: Connection] = [:]
    private var writing: Set<FileDescriptor> = []
    private var events = [berth_epoll_event](repeating: berth_epoll_event(), count: 256)
    unowned let handler: EventHandler
    /// During `pollNested`: the connection whose command is running underneath.
    private var nestedActive: Connection?
    /// Connections closed during a nested poll, whose shard bookkeeping (which takes shard
    /// locks) waits for the next poll.
    private var closedLater: [Connection] = []

    init(wakeFD: FileDescriptor, handler: EventHandler) {
        epfd = FileDescriptor(rawValue: berth_epoll_create())
        self.wakeFD = wakeFD
        self.handler = handler
        control(add, wakeFD, inMask)
    }

    deinit { epfd.closeQuietly() }

    private let add = Int32(BERTH_EPOLL_ADD), modify = Int32(BERTH_EPOLL_MOD), remove = Int32(BERTH_EPOLL_DEL)
    private let inMask = UInt32(BERTH_EPOLLIN), outMask = UInt32(BERTH_EPOLLOUT)
    private let errorMask = UInt32(BERTH_EPOLLERR | BERTH_EPOLLHUP)

    private func control(_ op: Int32, _ fd: FileDescriptor, _ mask: UInt32) {
        _ = berth_epoll_ctl(epfd.rawValue, op, fd.rawValue, mask)
    }

    func addListener(_ fd: FileDescriptor) {
        listenFD = fd
        control(add, fd, inMask)
    }

    func replaceListener(with fd: FileDescriptor) {
        let old = listenFD
        if let old { control(remove, old, 0) }
        addListener(fd)
        old?.shutdownBoth()
        old?.closeQuietly()
    }

    func register(_ conn: Connection) {
        connections[conn.fd] = conn
        control(add, conn.fd, inMask)
    }

    func poll(timeoutMicros: Int) {
        if !closedLater.isEmpty {
            let closed = closedLater
            closedLater = []
            for conn in closed { handler.closed(conn) }
        }
        handler.beforeWaiting()
        // epoll_wait counts milliseconds: round up so a deadline is never polled past early.
        let timeoutMs = Int32((timeoutMicros + 999) / 1000)
        let n = events.withUnsafeMutableBufferPointer { berth_epoll_wait(epfd.rawValue, $0.baseAddress, 256, timeoutMs) }
        guard n > 0 else { return }
        // A nested poll reuses nothing of this one's: its own copy of the events.
        for event in events.prefix(Int(n)) { handle(FileDescriptor(rawValue: event.fd), event.events) }
    }

    func pollNested(skipping active: Connection) {
        guard nestedActive == nil else { return }
        nestedActive = active
        defer { nestedActive = nil }
        var batch = [berth_epoll_event](repeating: berth_epoll_event(), count: 64)
        let n = batch.withUnsafeMutableBufferPointer { berth_epoll_wait(epfd.rawValue, $0.baseAddress, 64, 0) }
        guard n > 0 else { return }
        for event in batch.prefix(Int(n)) {
            let fd = FileDescriptor(rawValue: event.fd)
            // Level-triggered: what is skipped now is reported again by the next poll.
            if fd == wakeFD {
                wakeFD.drainWake()
                handler.wokenNested()
                continue
            }
            if connections[fd] === active { continue }
            handle(fd, event.events)
        }
    }

    private func handle(_ fd: FileDescriptor, _ mask: UInt32) {
        if fd == wakeFD {
            wakeFD.drainWake()
            handler.woken()
        } else if fd == listenFD {
            acceptAll()
        } else if let conn = connections[fd] {
            if mask & (inMask | errorMask) != 0 && conn.moveTo < 0 { readAll(conn) }
            // Reading may have closed the connection, or handed it to another shard.
            guard connections[fd] === conn else { return }
            let failing = conn.moveTo >= 0 && mask & errorMask != 0
            if mask & outMask != 0 || failing, !conn.closing || conn.closeAfterFlush { flush(conn) }
            if conn.moveTo >= 0 { detachWhenIdle(conn) }
        }
    }

    private func acceptAll() {
        while let fd = listenFD?.acceptConnection() { handler.accepted(fd: fd) }
    }

    private func readAll(_ conn: Connection) {
        var gotData = false
        reading: while !conn.closing {
            conn.prepareReceive()
            let room = conn.input.writableCount
            switch conn.fd.receive(into: conn.input) {
            case .success(let n) where n > 0:
                conn.received(n, room: room)
                gotData = true
                if n < room { break reading }  // the socket is drained
            case .failure(.wouldBlock):
                break reading
            default:  // the peer closed, or the socket failed
                close(conn)
                return
            }
        }
        if gotData && !conn.closing { handler.received(conn) }
    }

    func flush(_ conn: Connection) {
        guard connections[conn.fd] === conn, !conn.outputHeld else { return }
        while !conn.output.isEmpty {
            switch conn.fd.send(conn.output.readableBytes) {
            case .success(let n) where n > 0:
                conn.output.consume(n)
                conn.netOutputBytes += n
            case .failure(.wouldBlock):
                if writing.insert(conn.fd).inserted { control(modify, conn.fd, inMask | outMask) }
                return
            default:
                closeNow(conn)
                return
            }
        }
        conn.output.clear()
        if writing.remove(conn.fd) != nil { control(modify, conn.fd, inMask) }
        if conn.closeAfterFlush { closeNow(conn); return }
        conn.outputDrained()
    }

    /// Lets go of a connection marked to move once its output is written; until then it is
    /// watched for writing only, so no more input is read here.
    private func detachWhenIdle(_ conn: Connection) {
        guard connections[conn.fd] === conn, conn.moveTo >= 0, !conn.closing else { return }
        if !conn.output.isEmpty {
            control(modify, conn.fd, outMask)
            writing.insert(conn.fd)
            return
        }
        // Refused: the connection stays, watched for input again (flush restored the mask).
        guard handler.claimMove(conn) else { return }
        control(remove, conn.fd, 0)
        connections.removeValue(forKey: conn.fd)
        writing.remove(conn.fd)
        handler.detached(conn)
    }

    func close(_ conn: Connection) {
        conn.closing = true
        if conn.closeAfterFlush && !conn.output.isEmpty { flush(conn); return }
        closeNow(conn)
    }

    private func closeNow(_ conn: Connection) {
        guard connections[conn.fd] === conn else { return }
        conn.closing = true
        control(remove, conn.fd, 0)
        connections.removeValue(forKey: conn.fd)
        writing.remove(conn.fd)
        conn.closeDescriptor()
        if nestedActive != nil { closedLater.append(conn) } else { handler.closed(conn) }
    }
}
