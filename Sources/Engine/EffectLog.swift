import Keyspace
import RESP
#if canImport(Glibc)
import Glibc
#endif

/// `effect-log <file>`: writes the effect stream to a file as RESP commands, the format of
/// Redis's append-only file, with a SELECT wherever the database changes. It is how the
/// stream is checked (a replay of the file into a fresh server, Berth or redis-server,
/// must reach the same keyspace) and the ground the durability work's AOF stands on; it
/// is not one yet: no fsync policy, no rewrite, nothing is loaded from it at start.
final class EffectLog: EffectConsumer, @unchecked Sendable {
    private let fd: Int32
    /// The database the file's reader is in (a replay starts in 0).
    private var db = 0

    init(path: String) throws {
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Sockets.Failure(description: "effect-log \(path): \(String(cString: strerror(errno)))") }
    }

    deinit { close(fd) }

    /// Called by the one thread that drains the stream.
    func consume(_ effects: [Effect]) {
        let out = IOBuffer(capacity: 4096)
        let w = ReplyWriter(buffer: out, protocolVersion: 2, countsErrors: false)
        for e in effects {
            if e.db >= 0 && e.db != db {
                w.bulkArray([Bytes("SELECT"), Bytes(String(e.db))])
                db = e.db
            }
            w.bulkArray(e.args)
        }
        let bytes = out.readableBytes
        var offset = 0
        while offset < bytes.count {
            let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }  // a full disk loses the rest; no AOF guarantees here
            offset += n
        }
    }
}
