import Keyspace
import RESP
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// `effect-log <file>`: writes the effect stream to a file as RESP commands, the format of
/// Redis's append-only file, with a SELECT wherever the database changes. It is how the
/// stream is checked (a replay of the file into a fresh server, Berth or redis-server,
/// must reach the same keyspace). The append-only file (AppendOnlyFile.swift) writes the
/// same commands with fsync policies, rewrites and loading at start.
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
        EffectLog.encode(effects[...], into: ReplyWriter(buffer: out, protocolVersion: 2, countsErrors: false), db: &db)
        // A full disk loses the rest; no AOF guarantees here.
        _ = try? fd.writeAll(out.readableBytes)
    }

    /// Effects as the commands of an append-only file, with a SELECT wherever the
    /// database changes from `db` (the reader's database, updated). The append-only file
    /// writes the same.
    static func encode(_ effects: ArraySlice<Effect>, into w: ReplyWriter, db: inout Int) {
        for e in effects {
            if e.db >= 0 && e.db != db {
                w.bulkArray([Bytes("SELECT"), Bytes(e.db)])
                db = e.db
            }
            w.bulkArray(e.args)
        }
    }
}
