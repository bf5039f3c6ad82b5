import RESP
import Synchronization

/// Client migration: a connection whose commands keep landing on another shard's keys
/// moves to that shard.
///
/// A data command runs on its connection's home thread under the lock of the shard that
/// owns its key (Execution.swift). When clients on two shards work one hot key (a job
/// queue's list, a leaderboard's sorted set) both threads take turns on that key's lock,
/// and the key's data travels between their caches at every turn. So each connection
/// counts how many key-bearing commands in a row went to one other shard
/// (`Connection.awayStreak`); once that reaches `client-migration-streak` (64 by
/// default, 0 turns migration off) at the end of an input batch, the connection moves
/// there, and from then on its commands on that key run on the key's own thread. A
/// blocked client of such a connection is then also woken by its own shard, without an
/// inbox hop. A command on the home shard, or on a third shard, restarts the count, so
/// clients of keys spread over all shards (most traffic) never move.
///
/// The move:
/// 1. At the end of a batch, `considerMoving` checks that the connection carries no
///    state tied to its home shard (blocked, in MULTI, WATCHing, subscribed, paused,
///    waiting for a reply from other shards, closing) and that every complete command in
///    its input has run, then marks it (`moveTo`).
/// 2. The event backend stops reading it and lets its last send finish. Then it asks
///    `claimMove`, which may refuse (see below): the connection just stays and reading
///    resumes. Otherwise the backend forgets it without closing the socket
///    (`detachWhenIdle`) and calls `detached`.
/// 3. `detached` removes it from this shard's table and posts it to the target shard,
///    the last thing this thread does with it. The inbox hands it over.
/// 4. The target adds it to its table (`welcome`) and starts reading; bytes the client
///    sent meanwhile wait in the socket, and a partial command waits in `input` with the
///    parser's state, so nothing is lost or reordered.
/// The client ID, name, database, protocol and reply mode go with the connection object.
///
/// CLIENT LIST and CLIENT KILL visit every shard's table in turn; a connection in the
/// inbox between two tables would be missed, or seen twice. `MigrationGate` keeps such
/// walks and moves apart. A move is claimed only once the connection's last send is done,
/// so a walk waits at most for one inbox hop, never for a client to read its replies.
extension Shard {
    /// Called after each input batch: moves `conn` if its streak says so and nothing
    /// ties it to this shard.
    func considerMoving(_ conn: Connection) {
        let streak = server.config.migrationStreak.load(ordering: .relaxed)
        guard streak > 0, conn.awayStreak >= streak, conn.isMovable,
              conn.awayShard >= 0, conn.awayShard < server.shards.count, conn.awayShard != index else { return }
        conn.awayStreak = 0
        conn.moveTo = conn.awayShard
    }

    /// The backend is ready to let go of `conn`: false keeps it here (a CLIENT LIST or
    /// CLIENT KILL walk is under way), and the backend resumes reading it.
    func claimMove(_ conn: Connection) -> Bool {
        section.releaseKept()
        guard server.migrations.beginMove() else {
            conn.moveTo = -1
            return false
        }
        stats.clientMigrations += 1
        if conn.outputHeld {
            // Replies held for an fsync (DurabilityGate) are on this shard's list: made
            // durable now, they go with the connection, and its new shard sends them.
            server.durability.waitDurable()
            conn.outputHeld = false
            heldReplies.removeAll { $0 === conn }
        }
        return true
    }

    /// Counts a script's or function's declared keys toward `conn`'s streak, as a data
    /// command's: queue libraries run most of their work as scripts over hash-tagged keys.
    package func noteKeys(_ keys: ArraySlice<Bytes>, of conn: Connection) {
        guard let first = keys.first else { return }
        let s = slots.shard(of: first)
        let one = keys.allSatisfy { slots.shard(of: $0) == s }
        conn.noteKeyShard(one ? s : -1, home: index)
    }

    /// The backend has let go of `conn`: hand it to its new shard.
    func detached(_ conn: Connection) {
        clients.release(conn)
        let target = server.shards[conn.moveTo]
        // After this post the connection belongs to the target's thread: no touching it.
        target.post(.welcome(conn))
    }

    func retryWaitingWalks() {
        let walks = waitingWalks
        waitingWalks = []
        for walk in walks { walk(self) }
    }

    /// Takes in a connection that moved here from another shard.
    func welcome(_ conn: Connection) {
        conn.moveTo = -1
        conn.awayShard = -1
        conn.awayStreak = 0
        clients.welcome(conn)
        server.migrations.endMove()
        backend.register(conn)
        if !conn.output.isEmpty { flushReplies(conn) }  // replies it brought (claimMove)
    }

    /// `gather` over every shard's connection table, started only once no connection is
    /// between two tables and keeping new moves off until it is done.
    func walkClients<T: Sendable>(_ conn: Connection, work: @escaping @Sendable (Shard) -> T,
                                  finish: @escaping (Shard, Connection, [T]) -> Void) {
        let gate = server.migrations
        gate.announceWalk()
        startWalk(conn, gate, work, finish)
    }

    private func startWalk<T: Sendable>(_ conn: Connection, _ gate: MigrationGate,
                                        _ work: @escaping @Sendable (Shard) -> T,
                                        _ finish: @escaping (Shard, Connection, [T]) -> Void) {
        if conn.closing {
            gate.endWalk()
            return
        }
        guard gate.isSettled else {
            // Moves under way land within one inbox hop; look again a millisecond later,
            // with this client's later input held back meanwhile.
            conn.suspended = true
            waitingWalks.append { shard in
                conn.suspended = false
                shard.startWalk(conn, gate, work, finish)
            }
            return
        }
        gather(conn, work: work, finish: finish, whenDone: { gate.endWalk() })
    }
}

extension Connection {
    /// Counts a key-bearing command by the shard that owns its keys (-1: several shards).
    @inline(__always)
    func noteKeyShard(_ shard: Int, home: Int) {
        if shard == home || shard < 0 {
            awayStreak = 0
        } else if shard == awayShard {
            awayStreak &+= 1
        } else {
            awayShard = shard
            awayStreak = 1
        }
    }

    /// Nothing about this connection is tied to its home shard's thread or tables.
    var isMovable: Bool {
        blocked == nil && !suspended && transaction == nil && watched.isEmpty && !isSubscribed && !isMonitor
            && parkedCommand == nil && !closing && !closeAfterFlush && moveTo < 0 && !overOutputLimit
    }
}

/// Keeps client moves and whole-server client walks (CLIENT LIST, CLIENT KILL) apart, so
/// that a walk finds every connection in exactly one shard's table.
///
/// Invariants:
/// - `moving` counts connections that have left one shard's table and are not yet in
///   their new shard's table; `walking` counts walks announced and not yet finished.
/// - A move starts only by incrementing `moving` and then reading `walking` as zero; a
///   walk announces itself by incrementing `walking` and starts only after then reading
///   `moving` as zero. All four operations are sequentially consistent, so of a move and a
///   walk that start together at least one sees the other: no move is in flight while a
///   walk runs.
/// - A move that sees a walk backs off at once (the client just stays where it is); a
///   walk that sees a move keeps its announcement and waits for the move to end, which
///   takes one inbox hop. Since no new move can start meanwhile, walks never starve.
final class MigrationGate: Sendable {
    private let moving = Atomic<Int>(0)
    private let walking = Atomic<Int>(0)

    init() {}

    /// Claims a move; false when a walk is announced (the caller does not move).
    func beginMove() -> Bool {
        moving.add(1, ordering: .sequentiallyConsistent)
        if walking.load(ordering: .sequentiallyConsistent) == 0 { return true }
        moving.subtract(1, ordering: .sequentiallyConsistent)
        return false
    }

    /// The moved connection is in its new shard's table, or closed.
    func endMove() { moving.subtract(1, ordering: .sequentiallyConsistent) }

    func announceWalk() { walking.add(1, ordering: .sequentiallyConsistent) }

    /// True once no move is in flight: an announced walk may start.
    var isSettled: Bool { moving.load(ordering: .sequentiallyConsistent) == 0 }

    func endWalk() { walking.subtract(1, ordering: .sequentiallyConsistent) }
}
