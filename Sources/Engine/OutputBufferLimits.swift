import Keyspace
import RESP

/// client-output-buffer-limit: a client whose replies pile up unsent is closed, as Redis
/// closes it. Each class (normal, pubsub, replica) has a hard limit in bytes, and a soft
/// limit in bytes that may be exceeded for at most the soft seconds; 0 disables a limit.
///
/// - Subscribers use the pubsub class and MONITOR clients the replica class; they are
///   checked as each message is written (`flushWithinLimits`), after the attempt to send
///   it, since nobody waits for them to ask.
/// - Every other client uses the normal class (default: no limits). Its replies are
///   checked before they are sent (`flushReplies`), once per input batch and when a
///   blocked client's outcome arrives, which matches Redis's own reply buffering: Redis
///   also writes a batch's replies only after the batch. A client over the limit gets
///   none of the pending replies.
/// - Like Redis, the first 16 KiB of a normal client's pending output do not count
///   (Redis's fixed per-client reply buffer sits outside what its limit measures).
/// - A client over a limit is only marked here and closed at the top of the loop
///   (`runDeferredWork`): the check may run under shard locks, and closing a client may
///   need them. The close is logged and counted (INFO `client_output_buffer_limit_disconnections`).
extension Shard {
    /// Redis's per-client reply buffer, which its normal-class limit does not measure.
    static let uncountedReplyBytes = 16 * 1024

    /// Sends a client's pending replies, unless they put it over the normal class's
    /// limits: then it is marked to close and nothing more is sent to it.
    func flushReplies(_ conn: Connection) {
        if server.durability.mustHold(server.effects) {
            holdReplies(conn)
            return
        }
        sendReplies(conn)
    }

    /// appendfsync always: `conn`'s replies wait for the fsync of the effects before them
    /// (DurabilityGate); the shard sends them before it waits for events again.
    private func holdReplies(_ conn: Connection) {
        guard !conn.outputHeld else { return }
        conn.outputHeld = true
        heldReplies.append(conn)
    }

    /// Before the shard waits for events: makes every effect so far durable, then sends
    /// the replies held for it.
    func releaseHeldReplies() {
        guard !heldReplies.isEmpty else { return }
        section.releaseKept()  // other shards must not wait on this one's fsync
        server.durability.waitDurable()
        let held = heldReplies
        heldReplies.removeAll(keepingCapacity: true)
        for conn in held {
            conn.outputHeld = false
            sendReplies(conn)
        }
    }

    private func sendReplies(_ conn: Connection) {
        if !checkNormalLimit(conn) { return }
        backend.flush(conn)
    }

    /// The tick's look at clients over the soft limit (Redis's clientsCron does the same):
    /// one that sends nothing more, so that no new batch checks it, is still closed once
    /// its time over the limit is up.
    func recheckSoftLimits() {
        for conn in Array(clients.all) where conn.softLimitSince != 0 && !conn.isSubscribed && !conn.isMonitor {
            _ = checkNormalLimit(conn)
        }
    }

    /// Closes `conn` when its unsent replies pass the normal class's limits; false then.
    private func checkNormalLimit(_ conn: Connection) -> Bool {
        if !conn.isMonitor && !conn.isSubscribed && !conn.closing && !conn.overOutputLimit {
            let config = server.config
            let hard = config.normalHardLimit.load(ordering: .relaxed)
            let soft = config.normalSoftLimit.load(ordering: .relaxed)
            if hard > 0 || soft > 0 {
                let pending = conn.output.readableCount + conn.sending.readableCount - Self.uncountedReplyBytes
                if isOverOutputLimit(conn, pending: pending, hard: hard, soft: soft,
                                     softSeconds: config.normalSoftSeconds.load(ordering: .relaxed)) {
                    closeForOutputLimit(conn)
                    return false
                }
            }
        }
        return true
    }

    /// Flushes a connection that is sent what it did not ask for (messages, a MONITOR
    /// feed) and closes it once what it still has not taken passes the given limits.
    func flushWithinLimits(_ conn: Connection, hard: Int, soft: Int, softSeconds: Int) {
        guard !conn.closing else { return }
        backend.flush(conn)
        let pending = conn.output.readableCount + conn.sending.readableCount
        if isOverOutputLimit(conn, pending: pending, hard: hard, soft: soft, softSeconds: softSeconds) {
            closeForOutputLimit(conn)
        }
    }

    /// Whether `pending` bytes pass `hard`, or are over `soft` at a check more than
    /// `softSeconds` after the first check that found them over it, as Redis decides (the
    /// first such check only starts the clock, kept on the connection and reset once a
    /// check finds the client under the soft limit).
    private func isOverOutputLimit(_ conn: Connection, pending: Int, hard: Int, soft: Int, softSeconds: Int) -> Bool {
        if hard > 0 && pending > hard { return true }
        guard soft > 0 && pending > soft else {
            conn.softLimitSince = 0
            return false
        }
        let now = ShardStore.nowMilliseconds()
        guard conn.softLimitSince != 0 else {
            conn.softLimitSince = now
            return false
        }
        return now - conn.softLimitSince > Int64(softSeconds) * 1000
    }

    private func closeForOutputLimit(_ conn: Connection) {
        server.log.warning("Client id=\(conn.id) addr=\(conn.peer) name=\(conn.name) closed for overcoming of output buffer limits.")
        stats.outputLimitDisconnections += 1
        conn.overOutputLimit = true
        overLimit.append(conn)
    }
}
