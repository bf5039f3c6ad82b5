// Redis 7's multi-part append-only file: a directory (`appenddirname`) holding one base
// file (a snapshot: an RDB image, or commands), incremental files of commands written
// after it, and a manifest naming them in order. A line of the manifest is
//     file <name> seq <n> type <b|i|h>
// (b: the base, i: an incremental file, h: history, left over from a rewrite and
// deleted), written as key/value pairs so readers skip keys they do not know. The
// manifest is replaced atomically (written beside, fsynced, renamed), so the directory
// always describes a complete data set. redis-check-aof from Redis 7 reads it.

/// One file the manifest names.
public struct AOFFile: Equatable, Sendable {
    public enum Kind: String, Sendable { case base = "b", incremental = "i", history = "h" }
    public var name: String
    public var sequence: Int
    public var kind: Kind

    public init(name: String, sequence: Int, kind: Kind) {
        self.name = name
        self.sequence = sequence
        self.kind = kind
    }
}

public struct AOFManifest: Equatable, Sendable {
    public var base: AOFFile?
    /// In the order they apply.
    public var incrementals: [AOFFile] = []
    public var history: [AOFFile] = []

    public init(base: AOFFile? = nil, incrementals: [AOFFile] = []) {
        self.base = base
        self.incrementals = incrementals
    }

    /// `appendonly.aof.3.base.rdb`, `appendonly.aof.4.incr.aof`.
    public static func baseName(_ prefix: String, _ sequence: Int, rdb: Bool) -> String {
        "\(prefix).\(sequence).base.\(rdb ? "rdb" : "aof")"
    }

    public static func incrementalName(_ prefix: String, _ sequence: Int) -> String {
        "\(prefix).\(sequence).incr.aof"
    }

    public static func manifestName(_ prefix: String) -> String { "\(prefix).manifest" }

    public var nextIncrementalSequence: Int { (incrementals.map(\.sequence).max() ?? 0) + 1 }
    public var nextBaseSequence: Int { (base?.sequence ?? 0) + 1 }

    public struct ParseError: Error, CustomStringConvertible {
        public let line: Int
        public let reason: String
        public var description: String { "Invalid AOF manifest file format at line \(line): \(reason)" }
    }

    /// Reads a manifest as Redis 7 writes it (and accepts what it accepts: unknown keys,
    /// comment lines starting with '#', names quoted when they hold spaces).
    public static func parse(_ text: String) throws(ParseError) -> AOFManifest {
        var m = AOFManifest()
        var lineNumber = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = raw.hasSuffix("\r") ? raw.dropLast() : raw[...]
            if line.isEmpty || line.hasPrefix("#") { continue }
            let words = splitWords(String(line))
            guard words.count % 2 == 0, words.count >= 6 else { throw ParseError(line: lineNumber, reason: "wrong number of fields") }
            var name: String?, sequence: Int?, kind: AOFFile.Kind?
            for i in stride(from: 0, to: words.count, by: 2) {
                switch words[i] {
                case "file": name = words[i + 1]
                case "seq": sequence = Int(words[i + 1])
                case "type": kind = AOFFile.Kind(rawValue: words[i + 1])
                default: continue
                }
            }
            guard let name, !name.isEmpty, !name.contains("/") else { throw ParseError(line: lineNumber, reason: "bad file name") }
            guard let sequence, sequence > 0 else { throw ParseError(line: lineNumber, reason: "bad seq") }
            guard let kind else { throw ParseError(line: lineNumber, reason: "bad type") }
            let file = AOFFile(name: name, sequence: sequence, kind: kind)
            switch kind {
            case .base:
                guard m.base == nil else { throw ParseError(line: lineNumber, reason: "more than one base file") }
                m.base = file
            case .incremental:
                if let last = m.incrementals.last, last.sequence >= sequence {
                    throw ParseError(line: lineNumber, reason: "incremental files out of order")
                }
                m.incrementals.append(file)
            case .history:
                m.history.append(file)
            }
        }
        guard m.base != nil || !m.incrementals.isEmpty else { throw ParseError(line: lineNumber, reason: "no base and no incremental file") }
        return m
    }

    public func render() -> String {
        var out = ""
        for f in (base.map { [$0] } ?? []) + history + incrementals {
            out += "file \(quoted(f.name)) seq \(f.sequence) type \(f.kind.rawValue)\n"
        }
        return out
    }

    private func quoted(_ name: String) -> String {
        guard name.contains(" ") || name.contains("\"") else { return name }
        return "\"" + name.map { $0 == "\"" || $0 == "\\" ? "\\\($0)" : String($0) }.joined() + "\""
    }

    private static func splitWords(_ line: String) -> [String] {
        var words: [String] = []
        var current = ""
        var inQuotes = false, escaped = false, started = false
        for ch in line {
            if escaped { current.append(ch); escaped = false; continue }
            if inQuotes {
                if ch == "\\" { escaped = true } else if ch == "\"" { inQuotes = false } else { current.append(ch) }
                continue
            }
            if ch == " " || ch == "\t" {
                if started { words.append(current); current = ""; started = false }
            } else if ch == "\"" {
                inQuotes = true; started = true
            } else {
                current.append(ch); started = true
            }
        }
        if started { words.append(current) }
        return words
    }
}
