import Keyspace
import RESP
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// `effect-log <file>`: writes the effect stream to a file as RESP commands, the format of
/// Redis's append-only file, with a SELECT wherever the database changes. It is how the
/// stream is checked (a replay of the file into a fresh server, Berth or redis-server,
/// must reach the same keyspace) and the ground the durability work's AOF stands on; it
/// is not one yet: no fsync policy, no rewrite, nothing is loaded from it at start.
final class EffectLog: EffectConsumer, @unchecked Sendable {
    private let fd: FileDescriptor
    /// The database the file's reader is in (a replay starts in 0).
    private var db = 0

    /// Throws the Errno the file could not be opened with.
    init(path: String) throws {
        fd = try FileDescriptor.open(path, .writeOnly, options: [.create, .append, .closeOnExec],
                                     permissions: [.ownerReadWrite, .groupRead, .otherRead])
    }

    deinit { fd.closeQuietly() }

    /// Called by the one thread that drains the stream.
    func consume(_ effects: [Effect], firstSequence: UInt64) {
        let out = IOBuffer(capacity: 4096)
        let w = ReplyWriter(buffer: out, protocolVersion: 2, countsErrors: false)
        for e in effects {
            if e.db >= 0 && e.db != db {
                w.bulkArray([Bytes("SELECT"), Bytes(String(e.db))])
                db = e.db
            }
            w.bulkArray(e.args)
        }
        // A full disk loses the rest; no AOF guarantees here.
        _ = try? fd.writeAll(out.readableBytes)
    }
}
