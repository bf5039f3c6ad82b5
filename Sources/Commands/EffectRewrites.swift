import Keyspace
import RESP

/// The deterministic form of a write, for the effect stream: what a replica or an AOF
/// replay must run to reach the state the command left, read from that state where the
/// arguments would not reproduce it.
///
/// - Times become absolute: EXPIRE/PEXPIRE/EXPIREAT -> PEXPIREAT (or DEL, when the time
///   had passed and the key is gone); SET/SETEX/PSETEX with an expiry -> SET ... PXAT;
///   GETEX -> PEXPIREAT or PERSIST; GETDEL -> DEL.
/// - Floating-point increments become the value they produced (INCRBYFLOAT -> SET ...
///   KEEPTTL, HINCRBYFLOAT -> HSET), as Redis propagates them.
/// - Blocking commands that were served at once become their non-blocking forms (BLMOVE
///   -> LMOVE, BRPOPLPUSH -> RPOPLPUSH, BLMPOP -> LMPOP, BZMPOP -> ZMPOP). (BLPOP, BRPOP
///   and BZPOP* are recorded by `Blocking.serve`, whether served at once or later.)
///
/// Commands whose choice no state shows record their own effect: SPOP (the members it
/// took), XADD (the ID it chose), XREADGROUP, XCLAIM and XAUTOCLAIM (what they delivered
/// and claimed, StreamGroupEffects.swift). Everything else is its own effect.
enum EffectRewrites {
    static func effects(of spec: CommandSpec, _ ctx: CommandContext) -> [[Bytes]] {
        let a = ctx.args
        switch spec.name {
        case "expire", "pexpire", "expireat", "pexpireat":
            guard let e = ctx.lookup(a[1]) else { return [[Bytes("DEL"), a[1]]] }
            return [e.expireAt != 0 ? [Bytes("PEXPIREAT"), a[1], Bytes(String(e.expireAt))] : [Bytes("PERSIST"), a[1]]]
        case "set":
            let options = a.dropFirst(3).map { $0.string.lowercased() }
            let timed = options.contains { ["ex", "px", "exat", "pxat"].contains($0) }
            guard timed || options.contains("get") else { return [a] }
            return valueWithExpiry(ctx, key: a[1], value: a[2])
        case "setex", "psetex":
            return valueWithExpiry(ctx, key: a[1], value: a[3])
        case "getex":
            guard let e = ctx.lookup(a[1]) else { return [[Bytes("DEL"), a[1]]] }
            return [e.expireAt != 0 ? [Bytes("PEXPIREAT"), a[1], Bytes(String(e.expireAt))] : [Bytes("PERSIST"), a[1]]]
        case "getdel":
            return [[Bytes("DEL"), a[1]]]
        case "incrbyfloat":
            guard case .string(let v)? = ctx.lookup(a[1])?.value else { return [a] }
            return [[Bytes("SET"), a[1], v, Bytes("KEEPTTL")]]
        case "hincrbyfloat":
            guard case .hash(let h)? = ctx.lookup(a[1])?.value, let v = h[a[2]] else { return [a] }
            return [[Bytes("HSET"), a[1], a[2], v]]
        case "blmove":
            return [[Bytes("LMOVE")] + a[1...4]]
        case "brpoplpush":
            return [[Bytes("RPOPLPUSH"), a[1], a[2]]]
        case "blmpop":
            return [[Bytes("LMPOP")] + a[2...]]
        case "bzmpop":
            return [[Bytes("ZMPOP")] + a[2...]]
        default:
            return [a]
        }
    }

    /// SET of the value the key holds now, with its deadline as PXAT.
    private static func valueWithExpiry(_ ctx: CommandContext, key: Bytes, value: Bytes) -> [[Bytes]] {
        guard let e = ctx.lookup(key) else { return [[Bytes("DEL"), key]] }
        guard case .string(let v) = e.value else { return [[Bytes("SET"), key, value]] }
        var set = [Bytes("SET"), key, v]
        if e.expireAt != 0 { set += [Bytes("PXAT"), Bytes(String(e.expireAt))] }
        return [set]
    }
}
