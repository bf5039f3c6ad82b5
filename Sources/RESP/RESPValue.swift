/// A reply as a client sees it, RESP2 and RESP3 types alike.
public indirect enum RESPValue: Equatable, Sendable, CustomStringConvertible {
    case simple(String)
    case error(String)
    case integer(Int)
    case bulk(Bytes)
    case null
    case array([RESPValue])
    case map([(RESPValue, RESPValue)])
    case set([RESPValue])
    case double(Double)
    case boolean(Bool)
    case verbatim(String)
    case push([RESPValue])

    public static func == (a: RESPValue, b: RESPValue) -> Bool {
        switch (a, b) {
        case let (.simple(x), .simple(y)), let (.error(x), .error(y)), let (.verbatim(x), .verbatim(y)): return x == y
        case let (.integer(x), .integer(y)): return x == y
        case let (.bulk(x), .bulk(y)): return x == y
        case (.null, .null): return true
        case let (.array(x), .array(y)), let (.set(x), .set(y)), let (.push(x), .push(y)): return x == y
        case let (.map(x), .map(y)): return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case let (.double(x), .double(y)): return x == y
        case let (.boolean(x), .boolean(y)): return x == y
        default: return false
        }
    }

    /// The text of a bulk, simple or verbatim string.
    public var string: String? {
        switch self {
        case .bulk(let b): return b.string
        case .simple(let s), .verbatim(let s): return s
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .simple(let s): return s
        case .error(let e): return "(error) \(e)"
        case .integer(let i): return "(integer) \(i)"
        case .bulk(let b): return "\"\(b.string)\""
        case .null: return "(nil)"
        case .array(let a), .set(let a), .push(let a): return "[" + a.map(\.description).joined(separator: ", ") + "]"
        case .map(let m): return "{" + m.map { "\($0.0): \($0.1)" }.joined(separator: ", ") + "}"
        case .double(let d): return "(double) \(d)"
        case .boolean(let b): return "(boolean) \(b)"
        case .verbatim(let s): return s
        }
    }
}

/// Parses server replies from a buffer; returns nil until a whole reply is there.
public enum RESPReplyParser {
    public static func parse(_ buffer: IOBuffer) -> RESPValue? {
        var offset = 0
        guard let v = parse(buffer.readableBytes, &offset) else { return nil }
        buffer.consume(offset)
        return v
    }

    static func line(_ raw: UnsafeRawBufferPointer, _ offset: inout Int) -> String? {
        var i = offset
        while i + 1 < raw.count {
            if raw[i] == 13 && raw[i + 1] == 10 {
                let s = String(decoding: UnsafeRawBufferPointer(rebasing: raw[offset..<i]), as: UTF8.self)
                offset = i + 2
                return s
            }
            i += 1
        }
        return nil
    }

    static func parse(_ raw: UnsafeRawBufferPointer, _ offset: inout Int) -> RESPValue? {
        guard offset < raw.count else { return nil }
        let type = raw[offset]
        var o = offset + 1
        guard let l = line(raw, &o) else { return nil }
        func aggregate(_ n: Int) -> [RESPValue]? {
            var items: [RESPValue] = []
            for _ in 0..<max(0, n) {
                guard let v = parse(raw, &o) else { return nil }
                items.append(v)
            }
            return items
        }
        let result: RESPValue
        switch type {
        case UInt8(ascii: "+"): result = .simple(l)
        case UInt8(ascii: "-"): result = .error(l)
        case UInt8(ascii: ":"): result = .integer(Int(l) ?? 0)
        case UInt8(ascii: "_"): result = .null
        case UInt8(ascii: "#"): result = .boolean(l == "t")
        case UInt8(ascii: ","):
            result = .double(l == "inf" ? .infinity : l == "-inf" ? -.infinity : Double(l) ?? .nan)
        case UInt8(ascii: "$"), UInt8(ascii: "="):
            guard let n = Int(l) else { return nil }
            if n < 0 { result = .null; break }
            guard o + n + 2 <= raw.count else { return nil }
            let b = Bytes(UnsafeRawBufferPointer(rebasing: raw[o..<(o + n)]))
            o += n + 2
            result = type == UInt8(ascii: "$") ? .bulk(b) : .verbatim(String(b.string.dropFirst(4)))
        case UInt8(ascii: "*"), UInt8(ascii: "~"), UInt8(ascii: ">"):
            guard let n = Int(l) else { return nil }
            if n < 0 { result = .null; break }
            guard let items = aggregate(n) else { return nil }
            result = type == UInt8(ascii: "*") ? .array(items) : type == UInt8(ascii: "~") ? .set(items) : .push(items)
        case UInt8(ascii: "%"):
            guard let n = Int(l), let items = aggregate(2 * n) else { return nil }
            result = .map(stride(from: 0, to: items.count, by: 2).map { (items[$0], items[$0 + 1]) })
        default:
            result = .error("client: unexpected reply type byte \(type)")
        }
        offset = o
        return result
    }

    /// Encodes a command as a RESP multibulk array.
    public static func encode(_ args: [Bytes], into buffer: IOBuffer) {
        buffer.append(42); buffer.appendDecimal(args.count); buffer.append("\r\n")
        for a in args {
            buffer.append(36); buffer.appendDecimal(a.count); buffer.append("\r\n")
            buffer.append(a); buffer.append("\r\n")
        }
    }
}
