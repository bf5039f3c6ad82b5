import Keyspace
import RESP

/// Keyspace notifications (`notify-keyspace-events`): which classes of events are on,
/// and which event each write command produces.
///
/// Commands record events in their context (`CommandContext.notify`) while they run
/// under the shard locks; the engine publishes them to `__keyspace@<db>__:<key>` and
/// `__keyevent@<db>__:<event>` once the locks are released. Single-key commands whose
/// event is just their name come from `byCommand`, recorded when the command changed the
/// keyspace; commands that touch several keys, or only some of the keys they name,
/// record their own.
public struct NotifyFlags: OptionSet, Sendable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let keyspace = NotifyFlags(rawValue: 1 << 0)  // K
    public static let keyevent = NotifyFlags(rawValue: 1 << 1)  // E
    public static let generic = NotifyFlags(rawValue: 1 << 2)   // g
    public static let string = NotifyFlags(rawValue: 1 << 3)    // $
    public static let list = NotifyFlags(rawValue: 1 << 4)      // l
    public static let set = NotifyFlags(rawValue: 1 << 5)       // s
    public static let hash = NotifyFlags(rawValue: 1 << 6)      // h
    public static let zset = NotifyFlags(rawValue: 1 << 7)      // z
    public static let expired = NotifyFlags(rawValue: 1 << 8)   // x
    public static let evicted = NotifyFlags(rawValue: 1 << 9)   // e
    public static let stream = NotifyFlags(rawValue: 1 << 10)   // t
    public static let keyMiss = NotifyFlags(rawValue: 1 << 11)  // m
    public static let new = NotifyFlags(rawValue: 1 << 12)      // n
    public static let module = NotifyFlags(rawValue: 1 << 13)   // d (events modules emit)

    /// `A`: every class but key-miss and new, as in Redis.
    public static let all: NotifyFlags = [.generic, .string, .list, .set, .hash, .zset, .expired, .evicted, .stream, .module]

    /// Parses a `notify-keyspace-events` value; nil for an unknown letter.
    public static func parse(_ s: String) -> NotifyFlags? {
        var f = NotifyFlags()
        for c in s {
            switch c {
            case "K": f.insert(.keyspace)
            case "E": f.insert(.keyevent)
            case "g": f.insert(.generic)
            case "$": f.insert(.string)
            case "l": f.insert(.list)
            case "s": f.insert(.set)
            case "h": f.insert(.hash)
            case "z": f.insert(.zset)
            case "x": f.insert(.expired)
            case "e": f.insert(.evicted)
            case "t": f.insert(.stream)
            case "m": f.insert(.keyMiss)
            case "n": f.insert(.new)
            case "d": f.insert(.module)
            case "A": f.formUnion(.all)
            default: return nil
            }
        }
        return f
    }

    /// The value as Redis writes it back (CONFIG GET): the classes (`A` for all of them,
    /// which leaves `n` out, as Redis 7.0 writes it), then K, E and m.
    public var description: String {
        var out = ""
        if isSuperset(of: .all) {
            out = "A"
        } else {
            let classes: [(NotifyFlags, Character)] = [(.generic, "g"), (.string, "$"), (.list, "l"), (.set, "s"), (.hash, "h"),
                                                        (.zset, "z"), (.expired, "x"), (.evicted, "e"), (.stream, "t"),
                                                        (.module, "d"), (.new, "n")]
            for (flag, letter) in classes where contains(flag) { out.append(letter) }
        }
        for (flag, letter) in [(NotifyFlags.keyspace, "K"), (.keyevent, "E"), (.keyMiss, "m")] as [(NotifyFlags, Character)]
        where contains(flag) { out.append(letter) }
        return out
    }

    /// Whether anything would be published: a channel kind and an event class.
    public var isActive: Bool { !isDisjoint(with: [.keyspace, .keyevent]) && rawValue & ~0b11 != 0 }
}

/// One event to publish after the command.
public struct KeyspaceEvent: Sendable {
    public let db: Int
    public let key: Bytes
    public let event: String
    public init(db: Int, key: Bytes, event: String) { self.db = db; self.key = key; self.event = event }
}

public enum KeyspaceEvents {
    /// Event class and name of single-key commands whose event is recorded on args[1]
    /// whenever they changed the keyspace.
    public static let byCommand: [String: (NotifyFlags, String)] = [
        "set": (.string, "set"), "setnx": (.string, "set"), "setex": (.string, "set"), "psetex": (.string, "set"),
        "getset": (.string, "set"), "append": (.string, "append"), "setrange": (.string, "setrange"),
        "setbit": (.string, "setbit"),
        "incr": (.string, "incrby"), "decr": (.string, "incrby"), "incrby": (.string, "incrby"),
        "decrby": (.string, "incrby"), "incrbyfloat": (.string, "incrbyfloat"), "getdel": (.generic, "del"),
        "expire": (.generic, "expire"), "pexpire": (.generic, "expire"), "expireat": (.generic, "expire"),
        "pexpireat": (.generic, "expire"), "persist": (.generic, "persist"),
        "lpush": (.list, "lpush"), "lpushx": (.list, "lpush"), "rpush": (.list, "rpush"), "rpushx": (.list, "rpush"),
        "lpop": (.list, "lpop"), "rpop": (.list, "rpop"), "linsert": (.list, "linsert"), "lset": (.list, "lset"),
        "lrem": (.list, "lrem"), "ltrim": (.list, "ltrim"),
        "hset": (.hash, "hset"), "hmset": (.hash, "hset"), "hsetnx": (.hash, "hset"), "hdel": (.hash, "hdel"),
        "hincrby": (.hash, "hincrby"), "hincrbyfloat": (.hash, "hincrbyfloat"),
        "sadd": (.set, "sadd"), "srem": (.set, "srem"), "spop": (.set, "spop"),
        "zadd": (.zset, "zadd"), "zincrby": (.zset, "zincr"), "zrem": (.zset, "zrem"),
        "zpopmin": (.zset, "zpopmin"), "zpopmax": (.zset, "zpopmax"), "zremrangebyscore": (.zset, "zrembyscore"),
        "zremrangebyrank": (.zset, "zrembyrank"), "zremrangebylex": (.zset, "zrembylex"),
        "xadd": (.stream, "xadd"), "xdel": (.stream, "xdel"), "xtrim": (.stream, "xtrim"),
    ]
}

extension CommandContext {
    /// Records a keyspace event if its class is enabled.
    @inline(__always)
    public func notify(_ flag: NotifyFlags, _ event: String, _ key: Bytes) {
        guard notifyFlags.contains(flag) else { return }
        events.append(KeyspaceEvent(db: dbIndex, key: key, event: event))
    }
}
