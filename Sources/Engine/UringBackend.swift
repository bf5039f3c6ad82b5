import SystemPackage
import Uring
#if canImport(Glibc)
import Glibc
#endif

/// The io_uring event loop: one recv and at most one send in flight per connection, a
/// multishot accept on the listener, and a read kept armed on the inbox eventfd.
///
/// Invariants: a connection's `input` is only resized, or rewound when emptied, while no
/// recv is in flight (`IOBuffer.receiving`: a blocked client's pipelined input is read on
/// resume while its next recv is already armed), and
/// its `sending` buffer is not touched while a send is in flight (new replies go to
/// `output`, which is swapped in when the send completes). A closing connection's fd is
/// closed, and its slot reused, only when neither operation is in flight; so is a moving
/// connection's slot, and no recv is armed for it once it is marked to move.
final class UringBackend: EventBackend {
    let name = "io_uring"
    private let ring: Ring
    private let wakeFD: FileDescriptor
    private let wakeBuffer = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
    private var listenFD: FileDescriptor?
    /// Bumped when the listener is replaced; an accept's tag carries the generation it was
    /// armed for.
    private var listenerGeneration = 0
    private var slots: [Connection?] = []
    private var freeSlots: [Int] = []
    unowned let handler: EventHandler
    /// During `pollNested`: the connection whose command is running underneath.
    private var nestedActive: Connection?
    /// Its completions that arrived during a nested poll, for the next poll.
    private var held: [Ring.Completion] = []
    /// Connections closed during a nested poll, whose shard bookkeeping (which takes shard
    /// locks) waits for the next poll.
    private var closedLater: [Connection] = []

    private enum Op: UInt64 { case accept = 1, wake, recv, send }

    init(wakeFD: FileDescriptor, handler: EventHandler) throws {
        ring = try Ring(entries: 4096)
        self.wakeFD = wakeFD
        self.handler = handler
        armWake()
    }

    deinit { wakeBuffer.deallocate() }

    private func tag(_ op: Op, _ slot: Int = 0) -> UInt64 { UInt64(slot) << 8 | op.rawValue }

    private func armWake() {
        ring.read(fd: wakeFD.rawValue, into: wakeBuffer, count: 8, tag: tag(.wake))
    }

    func addListener(_ fd: FileDescriptor) {
        listenFD = fd
        ring.multishotAccept(fd: fd.rawValue, tag: tag(.accept, listenerGeneration))
    }

    func replaceListener(with fd: FileDescriptor) {
        let old = listenFD
        // The old accept's last completion carries the old generation: it is not re-armed.
        listenerGeneration += 1
        addListener(fd)
        old?.shutdownBoth()
        old?.closeQuietly()
    }

    func register(_ conn: Connection) {
        if let s = freeSlots.popLast() { conn.slot = s; slots[s] = conn } else { conn.slot = slots.count; slots.append(conn) }
        armRecv(conn)
    }

    private func armRecv(_ conn: Connection) {
        guard !conn.recvInFlight, !conn.closing, conn.moveTo < 0 else { return }
        conn.prepareReceive()
        conn.recvInFlight = true
        conn.input.beginReceive { ring.recv(fd: conn.fd.rawValue, into: $0.baseAddress!, count: $0.count, tag: tag(.recv, conn.slot)) }
    }

    func flush(_ conn: Connection) {
        guard !conn.sendInFlight, conn.slot >= 0, !conn.outputHeld else { return }
        if conn.output.isEmpty {
            if conn.closeAfterFlush || conn.closing { close(conn) } else { conn.outputDrained() }
            return
        }
        swap(&conn.output, &conn.sending)
        conn.output.clear()
        submitSend(conn)
    }

    private func submitSend(_ conn: Connection) {
        conn.sendInFlight = true
        let pending = conn.sending.readableBytes
        ring.send(fd: conn.fd.rawValue, from: pending.baseAddress!, count: pending.count, tag: tag(.send, conn.slot))
    }

    /// Idempotent: called again by each completion until nothing is in flight.
    func close(_ conn: Connection) {
        guard conn.slot >= 0 else { return }
        conn.closing = true
        if conn.sendInFlight {
            // Wait for the send: it may carry a reply the client must still get (a
            // blocked client's element). Only a subscriber closed for not reading would
            // hold the connection forever that way: fail its send instead.
            if conn.overOutputLimit { conn.fd.shutdownBoth() }
            return
        }
        if conn.closeAfterFlush && !conn.output.isEmpty {
            flush(conn)
            return
        }
        if conn.recvInFlight {
            // Completes the pending recv, whose completion then closes.
            conn.fd.shutdownBoth()
            return
        }
        finish(conn)
    }

    /// Lets go of a connection marked to move once its last send is done.
    private func detachWhenIdle(_ conn: Connection) {
        guard conn.moveTo >= 0, !conn.closing, !conn.sendInFlight, !conn.recvInFlight, conn.slot >= 0 else { return }
        guard handler.claimMove(conn) else {
            armRecv(conn)
            return
        }
        slots[conn.slot] = nil
        freeSlots.append(conn.slot)
        conn.slot = -1
        handler.detached(conn)
    }

    private func finish(_ conn: Connection) {
        guard conn.slot >= 0 else { return }
        conn.closeDescriptor()
        slots[conn.slot] = nil
        freeSlots.append(conn.slot)
        conn.slot = -1
        if nestedActive != nil { closedLater.append(conn) } else { handler.closed(conn) }
    }

    func poll(timeoutMicros: Int) {
        replayHeld()
        handler.beforeWaiting()
        ring.submitAndWait(timeoutMicros: timeoutMicros)
        ring.drainCompletions { dispatch($0) }
        // New requests are submitted by the next submitAndWait, one syscall per loop.
    }

    func pollNested(skipping active: Connection) {
        guard nestedActive == nil else { return }
        nestedActive = active
        defer { nestedActive = nil }
        ring.submitAndWait(timeoutMicros: 0)
        ring.drainCompletions { dispatch($0) }
        ring.submit()
    }

    /// What a nested poll left for later: completions of the connection whose command was
    /// running, and the shard's bookkeeping for connections closed meanwhile.
    private func replayHeld() {
        if !closedLater.isEmpty {
            let closed = closedLater
            closedLater = []
            for conn in closed { handler.closed(conn) }
        }
        if !held.isEmpty {
            let completions = held
            held = []
            for c in completions { dispatch(c) }
        }
    }

    private func dispatch(_ c: Ring.Completion) {
        guard c.tag != UInt64.max, let op = Op(rawValue: c.tag & 0xFF) else { return }
        switch op {
        case .wake:
            armWake()
            // Inbox messages may take shard locks: they wait for the running command, all
            // but new connections.
            if nestedActive == nil { handler.woken() } else { handler.wokenNested() }
        case .accept:
            if c.result >= 0 { handler.accepted(fd: FileDescriptor(rawValue: c.result)) }
            let current = Int(c.tag >> 8) == listenerGeneration
            if !c.hasMore && current, let listenFD { ring.multishotAccept(fd: listenFD.rawValue, tag: tag(.accept, listenerGeneration)) }
        case .recv:
            guard let conn = slots[Int(c.tag >> 8)] else { return }
            if conn === nestedActive { held.append(c); return }
            conn.recvInFlight = false
            conn.input.endReceive(conn.closing ? 0 : Int(c.result))
            received(conn, c.outcome)
        case .send:
            guard let conn = slots[Int(c.tag >> 8)] else { return }
            if conn === nestedActive { held.append(c); return }
            conn.sendInFlight = false
            sent(conn, c.outcome)
        }
    }

    private func received(_ conn: Connection, _ outcome: Result<Int, Errno>) {
        if conn.closing { return close(conn) }
        switch outcome {
        case .success(let n) where n > 0:
            // The room the receive had: what it filled plus what it left.
            conn.received(n, room: n + conn.input.writableCount)
            handler.received(conn)
            if conn.closeAfterFlush || conn.closing {
                close(conn)
            } else if conn.moveTo >= 0 {
                detachWhenIdle(conn)
            } else {
                armRecv(conn)
            }
        case .failure(.wouldBlock), .failure(.interrupted), .failure(.noBufferSpace):
            armRecv(conn)
        default:  // the peer closed, or the socket failed
            conn.closeAfterFlush = false
            conn.output.clear()
            close(conn)
        }
    }

    private func sent(_ conn: Connection, _ outcome: Result<Int, Errno>) {
        switch outcome {
        case .success(let n) where n > 0:
            conn.sending.consume(n)
            conn.netOutputBytes += n
            if !conn.sending.isEmpty { return submitSend(conn) }
            conn.sending.clear()
            flush(conn)
            if conn.moveTo >= 0 { detachWhenIdle(conn) }
        case .failure(.wouldBlock), .failure(.interrupted):
            submitSend(conn)
        default:
            conn.closeAfterFlush = false
            conn.output.clear()
            conn.sending.clear()
            close(conn)
        }
    }
}

extension Ring.Completion {
    /// A recv's or send's result: the byte count, or the errno it failed with.
    var outcome: Result<Int, Errno> { result >= 0 ? .success(Int(result)) : .failure(Errno(rawValue: -result)) }
}
