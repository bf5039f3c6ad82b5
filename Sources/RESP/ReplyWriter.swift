/// Encodes replies for one connection in RESP2 or RESP3 (after HELLO 3).
///
/// Shapes that differ between the versions (null, map, set, double, boolean) are written
/// in the negotiated form here, so command code states what it means, not how it looks.
public struct ReplyWriter {
    public let buffer: IOBuffer
    public var protocolVersion: Int
    /// False for a reply that goes to a module's Call rather than a client: its errors are
    /// counted only if the module passes them on (ReplyWithCallReply), as Redis counts them.
    public var countsErrors = true

    public init(buffer: IOBuffer, protocolVersion: Int = 2, countsErrors: Bool = true) {
        self.buffer = buffer
        self.protocolVersion = protocolVersion
        self.countsErrors = countsErrors
    }

    public var isRESP3: Bool { protocolVersion >= 3 }

    @inline(__always) public func ok() { buffer.append("+OK\r\n") }
    @inline(__always) public func queued() { buffer.append("+QUEUED\r\n") }

    public func simple(_ s: StaticString) {
        buffer.append(43); buffer.append(s); buffer.append("\r\n")
    }

    public func simple(_ s: String) {
        buffer.append(43); buffer.append(s); buffer.append("\r\n")
    }

    /// An array of simple strings, the shape of every HELP subcommand's reply.
    public func simpleLines(_ lines: [String]) {
        arrayHeader(lines.count)
        for l in lines { simple(l) }
    }

    /// Sees every error reply written (INFO errorstats); set once, before any writer runs.
    nonisolated(unsafe) public static var errorObserver: (@Sendable (String) -> Void)? = nil

    /// `message` is the full error line without the leading '-', e.g. "ERR syntax error".
    public func error(_ message: String) {
        if countsErrors { ReplyWriter.errorObserver?(message) }
        buffer.append(45)
        // An error line must not contain newlines; Redis replaces them with spaces.
        // Bytes, not Characters: Swift reads "\r\n" as one Character equal to neither.
        if message.utf8.contains(where: { $0 == 13 || $0 == 10 }) {
            buffer.append(Bytes(message.utf8.map { $0 == 13 || $0 == 10 ? 32 : $0 }))
        } else {
            buffer.append(message)
        }
        buffer.append("\r\n")
    }

    @inline(__always)
    public func integer(_ v: Int) {
        buffer.append(58); buffer.appendDecimal(v); buffer.append("\r\n")
    }

    @inline(__always)
    public func bulk(_ b: Bytes) {
        b.withUnsafeBytes { bulk($0) }
    }

    @inline(__always)
    public func bulk(_ raw: UnsafeRawBufferPointer) {
        buffer.reserve(raw.count + 32)
        buffer.append(36); buffer.appendDecimal(raw.count); buffer.append("\r\n")
        buffer.append(raw); buffer.append("\r\n")
    }

    public func bulk(_ s: String) {
        var s = s
        s.withUTF8 { bulk(UnsafeRawBufferPointer($0)) }
    }

    /// A string that RESP3 may show as verbatim text (INFO, CLIENT LIST); RESP2 gets a bulk.
    public func verbatim(_ s: String) {
        if isRESP3 {
            var s = s
            s.withUTF8 { raw in
                buffer.append(61); buffer.appendDecimal(raw.count + 4); buffer.append("\r\ntxt:")
                buffer.append(UnsafeRawBufferPointer(raw)); buffer.append("\r\n")
            }
        } else {
            bulk(s)
        }
    }

    /// Null bulk string (RESP2 `$-1`, RESP3 `_`).
    @inline(__always)
    public func null() { buffer.append(isRESP3 ? "_\r\n" as StaticString : "$-1\r\n") }

    /// Null array (RESP2 `*-1`, RESP3 `_`).
    public func nullArray() { buffer.append(isRESP3 ? "_\r\n" as StaticString : "*-1\r\n") }

    @inline(__always)
    public func arrayHeader(_ n: Int) {
        buffer.append(42); buffer.appendDecimal(n); buffer.append("\r\n")
    }

    /// A map of `n` pairs: RESP3 `%n`, RESP2 a flat array of 2n elements.
    public func mapHeader(_ n: Int) {
        buffer.append(isRESP3 ? 37 : 42); buffer.appendDecimal(isRESP3 ? n : 2 * n); buffer.append("\r\n")
    }

    /// A set: RESP3 `~n`, RESP2 an array.
    public func setHeader(_ n: Int) {
        buffer.append(isRESP3 ? 126 : 42); buffer.appendDecimal(n); buffer.append("\r\n")
    }

    /// A double: RESP3 `,` type, RESP2 a bulk string in Redis's shortest round-trip form.
    public func double(_ d: Double) {
        if isRESP3 {
            buffer.append(44); buffer.append(formatDouble(d, resp3: true)); buffer.append("\r\n")
        } else {
            bulk(formatDouble(d))
        }
    }

    public func boolean(_ b: Bool) {
        if isRESP3 { buffer.append(b ? "#t\r\n" : "#f\r\n") } else { integer(b ? 1 : 0) }
    }

    public func emptyArray() { buffer.append("*0\r\n") }

    /// An out-of-band message (Pub/Sub): a RESP3 push, an ordinary array in RESP2.
    public func pushHeader(_ n: Int) {
        buffer.append(isRESP3 ? 62 : 42); buffer.appendDecimal(n); buffer.append("\r\n")
    }

    public func bulkArray(_ items: [Bytes]) {
        arrayHeader(items.count)
        for item in items { bulk(item) }
    }
}

/// Formats a double the way Redis 7.2 and Valkey write scores and other doubles: nan,
/// inf, -inf, 0 and -0 spelled out; an integral value within half the 64-bit range as an
/// integer; anything else with the fewest significant digits that read back exactly, laid
/// out as Redis's Grisu-based writer lays them out (plain up to a point, then `d.ddde±x`
/// with no padding of the exponent: 0.00001, 1.5e-7, 1e+21).
public func formatDouble(_ d: Double, resp3: Bool = false) -> String {
    if d.isNaN { return "nan" }
    if d.isInfinite { return d > 0 ? "inf" : "-inf" }
    if d == 0 { return d.sign == .minus ? "-0" : "0" }
    if abs(d) <= Double(Int64.max / 2), d == d.rounded(.towardZero) { return String(Int64(d)) }
    let (digits, exponent) = shortestDigits(abs(d))
    return (d < 0 ? "-" : "") + layOutDigits(digits, exponent)
}

/// The shortest decimal digits that read back as `d` (positive, finite), as `digits` times
/// ten to the power `exponent`: what Swift's own printing finds.
func shortestDigits(_ d: Double) -> (digits: [UInt8], exponent: Int) {
    let text = Array(d.description.utf8)
    var mantissa = text[...], exponent = 0
    if let e = text.firstIndex(of: UInt8(ascii: "e")) {
        mantissa = text[..<e]
        exponent = Int(String(decoding: text[(e + 1)...], as: UTF8.self)) ?? 0
    }
    var digits: [UInt8] = []
    var afterPoint = false
    for c in mantissa {
        if c == UInt8(ascii: ".") { afterPoint = true; continue }
        if afterPoint { exponent -= 1 }
        if c == UInt8(ascii: "0") && digits.isEmpty { continue }  // leading zeros say nothing
        digits.append(c)
    }
    while digits.last == UInt8(ascii: "0") { digits.removeLast(); exponent += 1 }
    return (digits, exponent)
}

/// Redis's layout of `digits` times ten to `exponent`: a plain integer while that needs at
/// most 7 zeros beyond the digits, a plain decimal for exponents down to -6 (or when the
/// point falls within 3 places), otherwise scientific notation.
func layOutDigits(_ digits: [UInt8], _ k: Int) -> String {
    let n = digits.count
    let magnitude = abs(k + n - 1)
    var out: [UInt8] = []
    if k >= 0 && magnitude < n + 7 {
        out = digits + [UInt8](repeating: UInt8(ascii: "0"), count: k)
    } else if k < 0 && (k > -7 || magnitude < 4) {
        let offset = n + k
        if offset <= 0 {
            out = Array("0.".utf8) + [UInt8](repeating: UInt8(ascii: "0"), count: -offset) + digits
        } else {
            out = Array(digits[..<offset]) + [UInt8(ascii: ".")] + Array(digits[offset...])
        }
    } else {
        out = [digits[0]]
        if n > 1 { out += [UInt8(ascii: ".")] + digits[1...] }
        out += Array("e\(k + n - 1 < 0 ? "-" : "+")\(magnitude)".utf8)
    }
    return String(decoding: out, as: UTF8.self)
}
