import RESP
#if canImport(Glibc)
import Glibc
#endif

/// Redis glob-style matching (KEYS, SCAN MATCH, PSUBSCRIBE, CONFIG GET): `*`, `?`,
/// `[abc]`, `[^a]`, `[a-z]` and backslash escapes, with Redis's reading of odd patterns
/// (an unterminated class runs to the end; a trailing backslash is a literal one).
///
/// Every token but `*` matches exactly one byte, so the matcher needs to remember only the
/// last star: on a mismatch it lets that star take one more byte and retries from just
/// after it. An earlier star never needs revisiting (whatever it could take, the last star
/// can take instead), which bounds the work by pattern length times string length; the
/// recursive matcher this replaces was exponential in the number of stars.
public enum Glob {
    public static func matches(_ pattern: Bytes, _ string: Bytes, ignoreCase: Bool = false) -> Bool {
        pattern.withUnsafeBytes { p in string.withUnsafeBytes { s in match(p, s, ignoreCase) } }
    }

    public static func matches(_ pattern: String, _ string: String, ignoreCase: Bool = true) -> Bool {
        matches(Bytes(pattern), Bytes(string), ignoreCase: ignoreCase)
    }

    private static func fold(_ c: UInt8, _ on: Bool) -> UInt8 {
        on && c >= 65 && c <= 90 ? c | 0x20 : c
    }

    private static let star = UInt8(ascii: "*")

    /// Redis gives up on a match that passes more than this many stars with string left
    /// (its recursion limit), and so answers "no match"; Berth answers the same.
    static let maxStars = 1000

    private static func match(_ p: UnsafeRawBufferPointer, _ s: UnsafeRawBufferPointer, _ nocase: Bool) -> Bool {
        var pi = 0, si = 0
        var afterStar = -1, starTook = 0  // the last star's next token, and where its match ends
        var stars = 0
        while si < s.count {
            if pi < p.count {
                if p[pi] == star {
                    while pi < p.count && p[pi] == star { pi += 1 }
                    if pi == p.count { return true }
                    stars += 1
                    if stars > maxStars { return false }
                    afterStar = pi
                    starTook = si
                    continue
                }
                var next = pi
                if token(p, &next, matches: s[si], nocase) {
                    pi = next
                    si += 1
                    continue
                }
            }
            guard afterStar >= 0 else { return false }
            starTook += 1
            si = starTook
            pi = afterStar
        }
        while pi < p.count && p[pi] == star { pi += 1 }
        return pi == p.count
    }

    /// Whether the one-byte token at `pi` matches `ch`; moves `pi` past the token.
    private static func token(_ p: UnsafeRawBufferPointer, _ pi: inout Int, matches ch: UInt8, _ nocase: Bool) -> Bool {
        let c = p[pi]
        pi += 1
        switch c {
        case UInt8(ascii: "?"):
            return true
        case UInt8(ascii: "["):
            return classMatches(p, &pi, ch, nocase)
        case UInt8(ascii: "\\") where pi < p.count:
            pi += 1
            return fold(p[pi - 1], nocase) == fold(ch, nocase)
        default:
            return fold(c, nocase) == fold(ch, nocase)
        }
    }

    /// A class, `pi` just past its `[`: read as Redis reads it (an escaped byte compares
    /// exactly; `x-y` is a range whenever two more bytes follow, in either order).
    private static func classMatches(_ p: UnsafeRawBufferPointer, _ pi: inout Int, _ ch: UInt8, _ nocase: Bool) -> Bool {
        let negate = pi < p.count && p[pi] == UInt8(ascii: "^")
        if negate { pi += 1 }
        var matched = false
        while pi < p.count && p[pi] != UInt8(ascii: "]") {
            if p[pi] == UInt8(ascii: "\\") && pi + 1 < p.count {
                pi += 1
                if p[pi] == ch { matched = true }
            } else if pi + 2 < p.count && p[pi + 1] == UInt8(ascii: "-") {
                var lo = p[pi], hi = p[pi + 2]
                if lo > hi { swap(&lo, &hi) }  // ordered before folding, as Redis does
                lo = fold(lo, nocase); hi = fold(hi, nocase)
                let folded = fold(ch, nocase)
                if folded >= lo && folded <= hi { matched = true }
                pi += 2
            } else if fold(p[pi], nocase) == fold(ch, nocase) {
                matched = true
            }
            pi += 1
        }
        if pi < p.count { pi += 1 }  // the ']'; an unterminated class ends with the pattern
        return matched != negate
    }
}

/// Number parsing with Redis's rules.
public enum Numbers {
    public static func int(_ b: Bytes) -> Int? { b.withUnsafeBytes { parseDecimal($0) } }

    /// A double as Redis's getDoubleFromObject accepts it (C's strtod over the whole
    /// string, of any length: DBL_MAX written out has 309 digits): no spaces, no NaN,
    /// "inf"/"-inf" and hexadecimal forms allowed, and a value out of range (overflowing
    /// to infinity or underflowing to zero) refused.
    public static func double(_ b: Bytes) -> Double? {
        b.withUnsafeBytes { raw -> Double? in
            let n = raw.count
            guard n > 0 else { return nil }
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
