/// Finds the first argument of a complete RESP multibulk command in a buffer's unread
/// input, in place and without allocating: the engine prefetches the keys of pipelined
/// commands still waiting in a connection's input (Engine's BatchPrefetch.swift).
public enum RawCommandScan {
    /// Commands with more arguments than this end the scan (skipping them costs more than
    /// a prefetch saves).
    public static let maxArguments = 64

    /// The command starting at `offset`: its first argument when that fits in a `Bytes`
    /// inline (nil otherwise), and the offset just past the command; nil when the bytes
    /// there are not one complete multibulk command.
    public static func firstArgument(_ input: IOBuffer, from offset: Int) -> (Bytes?, Int)? {
        let base = input.base, end = input.writerIndex
        var at = offset
        guard at < end, base[at] == UInt8(ascii: "*"),
              let count = number(base, &at, end), count >= 1, count <= maxArguments else { return nil }
        var first: Bytes? = nil
        for i in 0..<count {
            guard at < end, base[at] == UInt8(ascii: "$"), let length = number(base, &at, end),
                  length >= 0, length <= end - at - 2 else { return nil }
            if i == 1 && length <= Bytes.inlineCapacity {
                first = Bytes(UnsafeRawBufferPointer(start: base + at, count: length))
            }
            at += length + 2
        }
        return (first, at)
    }

    /// Reads the decimal after the type byte at `at` up to its CRLF and moves past it.
    @inline(__always)
    private static func number(_ base: UnsafeMutablePointer<UInt8>, _ at: inout Int, _ end: Int) -> Int? {
        var i = at + 1, n = 0, digits = 0
        while i < end, base[i] != 13 {
            let d = Int(base[i]) &- 48
            guard d >= 0 && d <= 9, digits < 10 else { return nil }
            n = n &* 10 &+ d
            digits += 1
            i += 1
        }
        guard digits > 0, i + 1 < end, base[i + 1] == 10 else { return nil }
        at = i + 2
        return n
    }
}
