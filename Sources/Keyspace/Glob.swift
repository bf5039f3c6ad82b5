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

    /// A double as Redis's getDoubleFromObject accepts it (C's strtod over the whole
    /// string): no spaces, no NaN, "inf"/"-inf" and hexadecimal forms allowed, and a value
    /// out of range (overflowing to infinity or underflowing to zero) refused.
    public static func double(_ b: Bytes) -> Double? {
        b.withUnsafeBytes { raw -> Double? in
            let n = raw.count
            guard n > 0, n < 256 else { return nil }
            for c in raw where c == 32 || (c >= 9 && c <= 13) || c == 0 { return nil }
            return withCString(raw) { text -> Double? in
                var end: UnsafeMutablePointer<CChar>? = nil
                errno = 0
                let d = strtod(text, &end)
                guard end == text + n, !d.isNaN else { return nil }
                if errno == ERANGE && (d.isInfinite || d == 0) { return nil }
                return d
            }
        }
    }

    /// A sorted-set range bound's number as Redis reads it: strtod up to the first NUL, the
    /// whole of it consumed, NaN refused. Unlike a score, an empty string reads as 0 and
    /// leading spaces or an out-of-range value are accepted.
    public static func rangeDouble(_ b: Bytes) -> Double? {
        b.withUnsafeBytes { raw -> Double? in
            let n = raw.firstIndex(of: 0) ?? raw.count
            return withCString(UnsafeRawBufferPointer(rebasing: raw[0..<n])) { text -> Double? in
                var end: UnsafeMutablePointer<CChar>? = nil
                let d = strtod(text, &end)
                guard end == text + n, !d.isNaN else { return nil }
                return d
            }
        }
    }

    private static func withCString<R>(_ raw: UnsafeRawBufferPointer, _ body: (UnsafeMutablePointer<CChar>) -> R) -> R {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: raw.count + 1) { buf -> R in
            for i in 0..<raw.count { buf[i] = CChar(bitPattern: raw[i]) }
            buf[raw.count] = 0
            return body(buf.baseAddress!)
        }
    }
}

extension Glob {
    /// Case-insensitive match of a config or command name against a pattern.
    public static func matchesName(_ pattern: String, _ name: String) -> Bool {
        matches(Bytes(pattern), Bytes(name), ignoreCase: true)
    }
}
