import RESP
#if canImport(Glibc)
import Glibc
#endif

/// Redis glob-style matching (KEYS, SCAN MATCH, CONFIG GET): `*`, `?`, `[abc]`, `[^a]`,
/// `[a-z]` and backslash escapes.
public enum Glob {
    public static func matches(_ pattern: Bytes, _ string: Bytes, ignoreCase: Bool = false) -> Bool {
        pattern.withUnsafeBytes { p in string.withUnsafeBytes { s in match(p, 0, s, 0, ignoreCase, depth: 0) } }
    }

    public static func matches(_ pattern: String, _ string: String, ignoreCase: Bool = true) -> Bool {
        matches(Bytes(pattern), Bytes(string), ignoreCase: ignoreCase)
    }

    private static func fold(_ c: UInt8, _ on: Bool) -> UInt8 {
        on && c >= 65 && c <= 90 ? c | 0x20 : c
    }

    private static func match(_ p: UnsafeRawBufferPointer, _ pi: Int, _ s: UnsafeRawBufferPointer, _ si: Int,
                              _ nocase: Bool, depth: Int) -> Bool {
        // Deeply nested stars are cut off, as Redis does, to bound the work.
        if depth > 1000 { return false }
        var pi = pi, si = si
        while pi < p.count {
            let c = p[pi]
            switch c {
            case UInt8(ascii: "*"):
                while pi + 1 < p.count && p[pi + 1] == UInt8(ascii: "*") { pi += 1 }
                if pi + 1 == p.count { return true }
                while si <= s.count {
                    if match(p, pi + 1, s, si, nocase, depth: depth + 1) { return true }
                    si += 1
                }
                return false
            case UInt8(ascii: "?"):
                if si >= s.count { return false }
                si += 1
            case UInt8(ascii: "["):
                if si >= s.count { return false }
                pi += 1
                let negate = pi < p.count && p[pi] == UInt8(ascii: "^")
                if negate { pi += 1 }
                var matched = false
                while pi < p.count && p[pi] != UInt8(ascii: "]") {
                    if p[pi] == UInt8(ascii: "\\") && pi + 1 < p.count {
                        pi += 1
                        if p[pi] == s[si] { matched = true }
                    } else if pi + 2 < p.count && p[pi + 1] == UInt8(ascii: "-") && p[pi + 2] != UInt8(ascii: "]") {
                        var lo = fold(p[pi], nocase), hi = fold(p[pi + 2], nocase)
                        if lo > hi { swap(&lo, &hi) }
                        let ch = fold(s[si], nocase)
                        if ch >= lo && ch <= hi { matched = true }
                        pi += 2
                    } else if fold(p[pi], nocase) == fold(s[si], nocase) {
                        matched = true
                    }
                    pi += 1
                }
                if pi >= p.count { pi = p.count - 1 }  // unterminated class: treat end as ']'
                if matched == negate { return false }
                si += 1
            case UInt8(ascii: "\\") where pi + 1 < p.count:
                pi += 1
                if si >= s.count || p[pi] != s[si] { return false }
                si += 1
            default:
                if si >= s.count || fold(c, nocase) != fold(s[si], nocase) { return false }
                si += 1
            }
            pi += 1
        }
        return si == s.count
    }
}

/// Number parsing with Redis's rules.
public enum Numbers {
    public static func int(_ b: Bytes) -> Int? { b.withUnsafeBytes { parseDecimal($0) } }

    /// A double as Redis's string2d accepts it: no spaces, no NaN, "inf"/"-inf" allowed.
    public static func double(_ b: Bytes) -> Double? {
        b.withUnsafeBytes { raw -> Double? in
            let n = raw.count
            guard n > 0, n < 256 else { return nil }
            for c in raw {
                // Spaces anywhere, "nan" and hexadecimal forms are refused, as Redis does.
                if c == 32 || c == 9 || c == 10 || c == 13 || c == 11 || c == 12 || c == 0 { return nil }
                if c == UInt8(ascii: "x") || c == UInt8(ascii: "X") { return nil }
            }
            return withUnsafeTemporaryAllocation(of: CChar.self, capacity: n + 1) { buf -> Double? in
                for i in 0..<n { buf[i] = CChar(bitPattern: raw[i]) }
                buf[n] = 0
                var end: UnsafeMutablePointer<CChar>? = nil
                let d = strtod(buf.baseAddress!, &end)
                guard end == buf.baseAddress! + n, !d.isNaN else { return nil }
                return d
            }
        }
    }
}

extension Glob {
    /// Case-insensitive match of a config or command name against a pattern.
    public static func matchesName(_ pattern: String, _ name: String) -> Bool {
        matches(Bytes(pattern), Bytes(name), ignoreCase: true)
    }
}
