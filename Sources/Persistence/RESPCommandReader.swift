import RESP

/// Reads the commands of an append-only file: RESP arrays of bulk strings, one after
/// another, as Redis writes them. Reading stops at the first command that is not whole;
/// the caller learns where (`offset`) and decides whether a damaged tail may be dropped
/// (`aof-load-truncated`) or stops the start.
public struct RESPCommandReader {
    private let bytes: UnsafeRawBufferPointer
    /// Where the next command starts: after the last whole command read.
    public private(set) var offset = 0

    public enum Failure: Error, Equatable {
        /// The file ends inside a command: a crash while it was written.
        case truncated(offset: Int)
        /// Bytes that are not a command (not a truncation: the file is damaged).
        case malformed(offset: Int)
    }

    public init(_ bytes: UnsafeRawBufferPointer, startingAt offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    public var isAtEnd: Bool { offset >= bytes.count }

    /// The next command, nil at the end of the file.
    public mutating func next() throws(Failure) -> [Bytes]? {
        guard offset < bytes.count else { return nil }
        var i = offset
        guard bytes[i] == UInt8(ascii: "*") else { throw .malformed(offset: i) }
        i += 1
        let count = try number(&i)
        guard count >= 1, count <= 1 << 20 else { throw .malformed(offset: offset) }
        var args: [Bytes] = []
        args.reserveCapacity(count)
        for _ in 0..<count {
            guard i < bytes.count else { throw .truncated(offset: offset) }
            guard bytes[i] == UInt8(ascii: "$") else { throw .malformed(offset: i) }
            i += 1
            let n = try number(&i)
            guard n >= 0 else { throw .malformed(offset: i) }
            guard i + n + 2 <= bytes.count else { throw .truncated(offset: offset) }
            args.append(Bytes(UnsafeRawBufferPointer(rebasing: bytes[i..<(i + n)])))
            i += n
            guard bytes[i] == 13 && bytes[i + 1] == 10 else { throw .malformed(offset: i) }
            i += 2
        }
        offset = i
        return args
    }

    /// A decimal number ended by CRLF.
    private func number(_ i: inout Int) throws(Failure) -> Int {
        var v = 0, digits = 0
        while i < bytes.count && bytes[i] >= 48 && bytes[i] <= 57 {
            v = v &* 10 &+ Int(bytes[i] - 48)
            digits += 1
            guard digits <= 18 else { throw .malformed(offset: i) }
            i += 1
        }
        guard i + 1 < bytes.count else { throw .truncated(offset: offset) }
        guard digits > 0, bytes[i] == 13, bytes[i + 1] == 10 else { throw .malformed(offset: i) }
        i += 2
        return v
    }
}
