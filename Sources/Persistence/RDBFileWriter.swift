import RESP
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Writes an RDB file the way Redis makes one durable: into a temporary file in the same
/// directory, checksummed as it goes, flushed and fsynced, then renamed over the target
/// and the directory fsynced, so a crash at any moment leaves the old file or the new one,
/// never a part.
///
/// Used from one thread at a time (the snapshot's).
public final class RDBFileWriter {
    public let path: String
    private let temporaryPath: String
    private let fd: FileDescriptor
    private var buffer: [UInt8] = []
    private var crc: UInt64 = 0
    private let checksum: Bool
    private var database = -1
    /// Each database's key and TTL counts, written as a RESIZEDB hint the first time the
    /// file selects it (a reader sizes its table once instead of growing it as it loads).
    public var sizeHints: [Int: (keys: Int, expires: Int)] = [:]
    private var hinted: Set<Int> = []
    public private(set) var bytesWritten = 0
    private static let flushAt = 1 << 20

    /// Opens the temporary file beside `path`. Throws the Errno it could not be opened with.
    public init(path: String, checksum: Bool) throws {
        self.path = path
        self.checksum = checksum
        let dir = RDBFileWriter.directory(of: path)
        temporaryPath = "\(dir)/temp-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).rdb"
        fd = try FileDescriptor.open(temporaryPath, .writeOnly, options: [.create, .truncate, .closeOnExec],
                                     permissions: [.ownerReadWrite, .groupRead, .otherRead])
        buffer.reserveCapacity(RDBFileWriter.flushAt + 65536)
    }

    public static func directoryName(of path: String) -> String { directory(of: path) }

    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// The magic and version, then the auxiliary fields.
    public func header(aux: [(String, Bytes)]) throws {
        buffer.append(contentsOf: Array("REDIS".utf8))
        buffer.append(contentsOf: Array(String(format4(RDBVersion.written)).utf8))
        var out = RDBOutput(compress: false)
        for (k, v) in aux {
            out.byte(RDBOpcode.aux)
            out.string(k)
            out.string(v)
        }
        try append(out.bytes)
    }

    private func format4(_ v: UInt16) -> String {
        let s = String(v)
        return String(repeating: "0", count: max(0, 4 - s.count)) + s
    }

    /// A FUNCTION library, by its source.
    public func functionLibrary(_ source: Bytes) throws {
        var out = RDBOutput(compress: false)
        out.byte(RDBOpcode.function2)
        out.string(source)
        try append(out.bytes)
    }

    /// Key records of database `db` (ShardSnapshot's output), preceded by a SELECTDB when
    /// the file was in another database.
    public func records(db: Int, _ bytes: [UInt8]) throws {
        if db != database {
            var out = RDBOutput(compress: false)
            out.byte(RDBOpcode.selectDB)
            out.length(db)
            if let hint = sizeHints[db], hinted.insert(db).inserted {
                out.byte(RDBOpcode.resizeDB)
                out.length(hint.keys)
                out.length(hint.expires)
            }
            try append(out.bytes)
            database = db
        }
        try append(bytes)
    }

    /// Bytes already in RDB form (a module's aux record).
    public func raw(_ bytes: [UInt8]) throws { try append(bytes) }

    /// Ends the file, makes it durable and puts it in place.
    public func commit() throws {
        buffer.append(RDBOpcode.eof)
        try flush()
        let sum = checksum ? crc : 0
        withUnsafeBytes(of: sum.littleEndian) { buffer.append(contentsOf: $0) }
        try flushRaw()
        try fd.sync()
        try fd.close()
        guard rename(temporaryPath, path) == 0 else {
            let e = Errno(rawValue: errno)
            unlink(temporaryPath)
            throw e
        }
        RDBFileWriter.syncDirectory(RDBFileWriter.directory(of: path))
    }

    /// Gives up: the temporary file goes, the old file stays.
    public func abandon() {
        fd.closeQuietlyIfOpen()
        unlink(temporaryPath)
    }

    public static func syncDirectory(_ dir: String) {
        if let d = try? FileDescriptor.open(dir, .readOnly, options: [.directory, .closeOnExec]) {
            _ = try? d.sync()
            try? d.close()
        }
    }

    private func append(_ bytes: [UInt8]) throws {
        buffer.append(contentsOf: bytes)
        if buffer.count >= RDBFileWriter.flushAt { try flush() }
    }

    private func flush() throws {
        if checksum { crc = buffer.withUnsafeBytes { CRC64.update(crc, $0) } }
        try flushRaw()
    }

    private func flushRaw() throws {
        guard !buffer.isEmpty else { return }
        _ = try buffer.withUnsafeBytes { try fd.writeAll($0) }
        bytesWritten += buffer.count
        buffer.removeAll(keepingCapacity: true)
    }
}

extension FileDescriptor {
    fileprivate func closeQuietlyIfOpen() { try? close() }
}

extension FileDescriptor {
    /// fsync(2): the file's data and metadata reach the disk.
    public func sync() throws {
        while fsync(rawValue) != 0 {
            let e = Errno(rawValue: errno)
            if e != .interrupted { throw e }
        }
    }

    /// fdatasync(2): the data, and the metadata needed to read it back.
    public func dataSync() throws {
        while fdatasync(rawValue) != 0 {
            let e = Errno(rawValue: errno)
            if e != .interrupted { throw e }
        }
    }
}
