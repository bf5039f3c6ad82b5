import Commands
import Keyspace
import RESP
import Synchronization

/// CLIENT PAUSE: while a pause is in force, commands it covers (all of them, or only
/// those that may write) are held back on their connection and run when it ends; the
/// connection's later input waits behind them, so replies stay in order. What may write,
/// as Redis decides it: write commands, PUBLISH/SPUBLISH, EXEC of a transaction holding
/// one, and scripts and functions not declared `no-writes` (EVAL_RO and FCALL_RO never
/// write). A held-back client counts in INFO's blocked_clients, as in Redis.
///
/// Invariants: `end` (wall-clock milliseconds) and `all` are written only by CLIENT
/// PAUSE/UNPAUSE and read by every shard before each command; a shard that parked a
/// command polls no longer than until `end`, and CLIENT UNPAUSE wakes every shard, so
/// no parked command outlives the pause by more than one loop turn.
final class ClientPause: Sendable {
    private let endMs = Atomic<Int64>(0)
    private let allCommands = Atomic<Bool>(false)
    /// Expiry is suspended for as long as the pause lasts.
    let expiryHold: ExpiryHold

    init(expiryHold: ExpiryHold) { self.expiryHold = expiryHold }

    var end: Int64 { endMs.load(ordering: .relaxed) }

    @inline(__always) var isActive: Bool { endMs.load(ordering: .relaxed) > 0 }

    /// Whether `spec` from `conn` must wait for the pause to end; `scriptMayWrite` answers
    /// for a script or function (its flags live with its body).
    func holdsBack(_ spec: CommandSpec, _ args: [Bytes], _ conn: Connection,
                   scriptMayWrite: (CommandSpec, [Bytes]) -> Bool) -> Bool {
        let end = endMs.load(ordering: .acquiring)
        guard end > 0 else { return false }
        guard ShardStore.nowMilliseconds() < end else {
            // Expired: clear it so later commands skip the clock read.
            _ = endMs.compareExchange(expected: end, desired: 0, ordering: .relaxed)
            return false
        }
        if allCommands.load(ordering: .relaxed) { return true }
        if mayWrite(spec, args, scriptMayWrite) { return true }
        if spec.name == "exec", let txn = conn.transaction {
            return txn.queue.contains { mayWrite($0.0, $0.1, scriptMayWrite) }
        }
        return false
    }

    private func mayWrite(_ spec: CommandSpec, _ args: [Bytes], _ scriptMayWrite: (CommandSpec, [Bytes]) -> Bool) -> Bool {
        if spec.flags.contains(.write) || spec.name == "publish" || spec.name == "spublish" { return true }
        return spec.flags.contains(.script) && !spec.flags.contains(.readonly) && scriptMayWrite(spec, args)
    }

    /// Starts or extends a pause; a pause never becomes shorter or less strict.
    func pause(until deadline: Int64, all: Bool, now: Int64) {
        let current = endMs.load(ordering: .acquiring)
        let stillOn = current > now
        if all || !stillOn { allCommands.store(all || (stillOn && allCommands.load(ordering: .relaxed)), ordering: .relaxed) }
        let end = max(deadline, stillOn ? current : 0)
        expiryHold.hold(until: end)
        endMs.store(end, ordering: .releasing)
    }

    func unpause() {
        expiryHold.release()
        endMs.store(0, ordering: .releasing)
        allCommands.store(false, ordering: .relaxed)
    }
}

extension Shard {
    /// Holds `args` back until the pause ends; the connection reads nothing meanwhile.
    func park(_ conn: Connection, _ args: [Bytes]) {
        conn.parkedCommand = args
        conn.suspended = true
        paused.append(conn)
        server.blockedClients.add(1, ordering: .relaxed)
    }


    /// Runs parked commands the pause no longer covers, then the input behind them.
    func resumePaused(now: Int64) {
        let waiting = paused
        paused = []
        for conn in waiting {
            server.blockedClients.subtract(1, ordering: .relaxed)
            guard !conn.closing, let args = conn.parkedCommand else { continue }
            conn.parkedCommand = nil
            conn.suspended = false
            batchTime = now
            execute(conn, args)
            if conn.parkedCommand == nil {
                processInput(conn)
                backend.flush(conn)
            }
        }
    }
}
