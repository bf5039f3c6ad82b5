import Synchronization

/// The connections homed on one shard, and the server-wide facts that follow them: which
/// shard each client lives on (`ClientShards`, for CLIENT UNBLOCK) and how many clients
/// are connected (maxclients, INFO).
///
/// Invariants: only the owning shard's thread calls it. A connection is in `byID` from
/// the moment it arrives (accepted here, or moved in: ClientMigration.swift) until it
/// closes or moves out, and `server.clientShards` names this shard for it meanwhile; the
/// server's client count holds each connection once from accept to close, whichever
/// shards it lives on in between.
final class ClientRegistry {
    private(set) var byID: [Int: Connection] = [:]
    private let shard: Int
    private unowned(unsafe) let server: Server
    /// Where the next accepted socket goes (shard 0 deals them round-robin).
    private var acceptCursor = 0

    init(shard: Int, server: Server) {
        self.shard = shard
        self.server = server
    }

    subscript(id: Int) -> Connection? { byID[id] }
    var all: Dictionary<Int, Connection>.Values { byID.values }
    var isEmpty: Bool { byID.isEmpty }

    /// Whether one more client may connect (maxclients).
    var hasRoom: Bool {
        server.clientCount.load(ordering: .relaxed) < server.config.maxClients.load(ordering: .relaxed)
    }

    /// The shard an accepted socket is dealt to.
    func nextAcceptingShard() -> Int {
        defer { acceptCursor &+= 1 }
        return acceptCursor % server.shards.count
    }

    /// A client accepted here.
    func admit(_ conn: Connection) {
        byID[conn.id] = conn
        server.clientShards.set(conn.id, shard: shard)
        server.clientCount.add(1, ordering: .relaxed)
    }

    /// A client moved in from another shard (counted when it was accepted).
    func welcome(_ conn: Connection) {
        byID[conn.id] = conn
        server.clientShards.set(conn.id, shard: shard)
    }

    /// A client moving out: the shard it goes to registers it.
    func release(_ conn: Connection) {
        byID.removeValue(forKey: conn.id)
    }

    /// A client closed; false when it was gone already.
    func remove(_ conn: Connection) -> Bool {
        guard byID.removeValue(forKey: conn.id) != nil else { return false }
        server.clientShards.remove(conn.id)
        server.clientCount.subtract(1, ordering: .relaxed)
        return true
    }
}

/// Which shard each client connection lives on, server-wide.
///
/// Invariants: an entry is written by the shard that takes the connection in (accept, or
/// the end of a move) and removed by the shard that closes it, so it is never behind by
/// more than the move in flight; a blocked client cannot move, so for a blocked client the
/// entry is exact. Writes happen per connection, not per command.
final class ClientShards: Sendable {
    private let shards = Mutex<[Int: Int]>([:])

    func set(_ id: Int, shard: Int) { shards.withLock { $0[id] = shard } }
    func remove(_ id: Int) { _ = shards.withLock { $0.removeValue(forKey: id) } }
    func shard(of id: Int) -> Int? { shards.withLock { $0[id] } }
}
