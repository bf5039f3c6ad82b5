import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file mapped read-only into memory for the length of one call: loading reads the
/// image in place (strings become `Bytes` straight from the mapping), with no read
/// buffer to fill and no copy of the file, and the pages go back to the kernel's cache
/// when the mapping ends.
///
/// The file must not shrink while it is mapped (reading a page past its new end would
/// raise SIGBUS); the server only maps files it wrote and renamed into place.
enum MappedFile {
    #if os(Linux)
    /// Every page is read in and mapped by the one call (the load reads all of them): one
    /// pass in the kernel instead of a page fault per page, about 5% of a load's time.
    private static let mapFlags = MAP_PRIVATE | MAP_POPULATE
    #else
    private static let mapFlags = MAP_PRIVATE
    #endif

    static func withContents<R>(of path: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let fd = try FileDescriptor.open(FilePath(path), .readOnly)
        defer { try? fd.close() }
        var info = stat()
        guard fstat(fd.rawValue, &info) == 0 else { throw Errno(rawValue: errno) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw Errno.invalidArgument }
        let size = Int(info.st_size)
        guard size > 0 else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        guard let base = mmap(nil, size, PROT_READ, mapFlags, fd.rawValue, 0), base != MAP_FAILED else {
            throw Errno(rawValue: errno)
        }
        defer { munmap(base, size) }
        // Loading reads front to back: let the kernel read ahead aggressively.
        _ = madvise(base, size, MADV_SEQUENTIAL)
        return try body(UnsafeRawBufferPointer(start: base, count: size))
    }
}
