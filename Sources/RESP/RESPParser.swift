#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Incremental parser for client requests: RESP multibulk arrays and inline commands.
///
/// It keeps the arguments parsed so far between calls, so a huge command arriving in many
/// reads is scanned once, not once per read. Errors carry Redis's exact protocol error
/// text; after an error the connection must be closed (Redis does the same).
public struct RESPParser: Sendable {
    public enum Result: Sendable {
        case command([Bytes])
        case needMore
        case protocolError(String)
    }

    public var maxBulkLength: Int
    public static let maxInlineLength = 64 * 1024
    /// Redis refuses count lines longer than this before seeing their end.
    static let maxCountLine = 32 * 1024

    private var args: [Bytes] = []
    private var expected = -1
    private var bulkLength = -1

    public init(maxBulkLength: Int = 512 * 1024 * 1024) {
        self.maxBulkLength = maxBulkLength
    }

    /// Bytes still needed to finish the bulk string being read, so a reader can reserve
    /// room for it in one go; 0 when unknown.
    public var pendingBulkBytes: Int { bulkLength >= 0 ? bulkLength + 2 : 0 }

    public mutating func next(_ buffer: IOBuffer) -> Result {
        while true {
            if expected < 0 {
                guard buffer.readableCount > 0 else {
                    // Between commands with nothing buffered: let go of the last command's
                    // arguments (they may be large) while keeping the array for the next.
                    args.removeAll(keepingCapacity: true)
                    return .needMore
                }
                if buffer.readPointer[0] != UInt8(ascii: "*") {
                    let r = parseInline(buffer)
                    if case .command(let a) = r, a.isEmpty { continue }
                    return r
                }
                switch readCountLine(buffer, limitError: "Protocol error: too big mbulk count string") {
                case .needMore: return .needMore
                case .error(let e): return .protocolError(e)
                case .value(let n):
                    guard let n, n <= Int(Int32.max) else {
                        return .protocolError("Protocol error: invalid multibulk length")
                    }
                    if n <= 0 { continue }
                    expected = n
                    // Once the previous command's array has been dropped by whoever ran
                    // it, its storage is unique again and is reused without allocating.
                    args.removeAll(keepingCapacity: true)
                    args.reserveCapacity(min(n, 1024))
                }
            }
            while args.count < expected {
                if bulkLength < 0 {
                    guard buffer.readableCount > 0 else { return .needMore }
                    let first = buffer.readPointer[0]
                    if first != UInt8(ascii: "$") {
                        let shown = String(decoding: [first], as: UTF8.self)
                        return .protocolError("Protocol error: expected '$', got '\(shown)'")
                    }
                    switch readCountLine(buffer, limitError: "Protocol error: too big bulk count string") {
                    case .needMore: return .needMore
                    case .error(let e): return .protocolError(e)
                    case .value(let n):
                        guard let n, n >= 0, n <= maxBulkLength else {
                            return .protocolError("Protocol error: invalid bulk length")
                        }
                        bulkLength = n
                    }
                }
                guard buffer.readableCount >= bulkLength + 2 else { return .needMore }
                args.append(Bytes(UnsafeRawBufferPointer(start: buffer.readPointer, count: bulkLength)))
                buffer.consume(bulkLength + 2)
                bulkLength = -1
            }
            expected = -1
            return .command(args)
        }
    }

    private enum CountLine { case needMore, error(String), value(Int?) }

    /// Reads `<prefix><integer>\r?`: like Redis, the line ends at its first CR and the byte
    /// after that CR is skipped unread, so a lone CR gives the errors Redis gives (the next
    /// line is then misread, not refused). The integer is nil when malformed.
    @inline(__always)
    private func readCountLine(_ buffer: IOBuffer, limitError: String) -> CountLine {
        let raw = buffer.readableBytes
        // The common line, a short count in canonical digits followed by CRLF, in one pass
        // without calls: the digits are accumulated as they are scanned for the CR.
        var i = 1, value = 0
        while i < raw.count && i <= 18 {
            let digit = raw[i] &- 48
            if digit > 9 { break }
            value = value &* 10 &+ Int(digit)
            i += 1
        }
        if i > 1 && i + 1 < raw.count && raw[i] == 13 && (raw[1] != 48 || i == 2) {
            buffer.consume(i + 2)
            return .value(value)
        }
        return readCountLineSlowly(buffer, limitError: limitError)
    }

    /// Everything else: signs, leading zeros, malformed or long lines, lines not yet whole.
    private func readCountLineSlowly(_ buffer: IOBuffer, limitError: String) -> CountLine {
        let raw = buffer.readableBytes
        guard raw.count > 1, let hit = memchr(raw.baseAddress! + 1, 13, raw.count - 1) else {
            return raw.count > RESPParser.maxCountLine ? .error(limitError) : .needMore
        }
        let cr = hit - UnsafeMutableRawPointer(mutating: raw.baseAddress!)
        guard cr + 1 < raw.count else { return .needMore }
        let value = parseDecimal(UnsafeRawBufferPointer(rebasing: raw[1..<cr]))
        buffer.consume(cr + 2)
        return .value(value)
    }

    private mutating func parseInline(_ buffer: IOBuffer) -> Result {
        let raw = buffer.readableBytes
        guard let nl = raw.firstIndex(of: 10) else {
            return raw.count > RESPParser.maxInlineLength
                ? .protocolError("Protocol error: too big inline request") : .needMore
        }
        var end = nl
        if end > 0 && raw[end - 1] == 13 { end -= 1 }
        let line = UnsafeRawBufferPointer(rebasing: raw[0..<end])
        let split = InlineSplitter.split(line)
        buffer.consume(nl + 1)
        guard let words = split else {
            return .protocolError("Protocol error: unbalanced quotes in request")
        }
        return .command(words)
    }
}

/// Parses an optionally signed decimal integer that fits in Int, as Redis's string2ll.
public func parseDecimal(_ raw: UnsafeRawBufferPointer) -> Int? {
    let n = raw.count
    guard n > 0, n <= 20 else { return nil }
    var i = 0
    var negative = false
    if raw[0] == 45 { negative = true; i = 1; guard n > 1 else { return nil } }
    // No leading zeros and no "-0", as Redis's string2ll: one spelling per number.
    if raw[i] == 48 && (n > i + 1 || negative) { return nil }
    var value: UInt64 = 0
    while i < n {
        let d = raw[i] &- 48
        guard d <= 9 else { return nil }
        let (m, o1) = value.multipliedReportingOverflow(by: 10)
        let (s, o2) = m.addingReportingOverflow(UInt64(d))
        guard !o1 && !o2 else { return nil }
        value = s
        i += 1
    }
    if negative {
        guard value <= UInt64(Int.max) + 1 else { return nil }
        return value == UInt64(Int.max) + 1 ? Int.min : -Int(value)
    }
    guard value <= UInt64(Int.max) else { return nil }
    return Int(value)
}

/// Splits an inline command line as Redis does: blanks separate words, a quote opens
/// anywhere in a word (`GET'x'` is `GETx`), "double quotes" understand \n \r \t \b \a
/// \\ \" and \xHH, 'single quotes' only \'. A closing quote must be followed by a blank
/// or the end of the line, and a NUL byte ends the line (Redis reads it as a C string).
public enum InlineSplitter {
    public static func split(_ line: UnsafeRawBufferPointer) -> [Bytes]? {
        var words: [Bytes] = []
        var i = 0
        let n = line.firstIndex(of: 0) ?? line.count
        func isSpace(_ c: UInt8) -> Bool { c == 32 || c == 9 || c == 10 || c == 13 || c == 11 || c == 12 }
        while true {
            while i < n && isSpace(line[i]) { i += 1 }
            if i >= n { return words }
            var word: [UInt8] = []
            var inDouble = false, inSingle = false, done = false
            while !done {
                if inDouble {
                    guard i < n else { return nil }
                    let c = line[i]
                    if c == 92 && i + 3 < n && line[i + 1] == 120 && isHex(line[i + 2]) && isHex(line[i + 3]) {
                        word.append(hexValue(line[i + 2]) << 4 | hexValue(line[i + 3]))
                        i += 3
                    } else if c == 92 && i + 1 < n {
                        i += 1
                        switch line[i] {
                        case 110: word.append(10)
                        case 114: word.append(13)
                        case 116: word.append(9)
                        case 98: word.append(8)
                        case 97: word.append(7)
                        default: word.append(line[i])
                        }
                    } else if c == 34 {
                        if i + 1 < n && !isSpace(line[i + 1]) { return nil }
                        done = true
                    } else {
                        word.append(c)
                    }
                } else if inSingle {
                    guard i < n else { return nil }
                    let c = line[i]
                    if c == 92 && i + 1 < n && line[i + 1] == 39 {
                        i += 1
                        word.append(39)
                    } else if c == 39 {
                        if i + 1 < n && !isSpace(line[i + 1]) { return nil }
                        done = true
                    } else {
                        word.append(c)
                    }
                } else {
                    if i >= n { done = true; break }
                    let c = line[i]
                    // Only these end a word; vertical tab and form feed are word bytes
                    // here, though they are skipped between words.
                    if c == 32 || c == 10 || c == 13 || c == 9 {
                        done = true
                    } else if c == 34 {
                        inDouble = true
                    } else if c == 39 {
                        inSingle = true
                    } else {
                        word.append(c)
                    }
                }
                if i < n { i += 1 }
            }
            words.append(Bytes(word))
        }
    }

    static func isHex(_ c: UInt8) -> Bool {
        (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70)
    }

    static func hexValue(_ c: UInt8) -> UInt8 {
        if c >= 48 && c <= 57 { return c - 48 }
        if c >= 97 && c <= 102 { return c - 87 }
        return c - 55
    }
}
