import Keyspace
import RESP

/// What the engine needs to know about a command before running it: arity, flags and
/// where its keys are, so that it can route it to the shards that own those keys.
public struct CommandFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let write = CommandFlags(rawValue: 1 << 0)
    public static let readonly = CommandFlags(rawValue: 1 << 1)
    public static let fast = CommandFlags(rawValue: 1 << 2)
    public static let admin = CommandFlags(rawValue: 1 << 3)
    /// Runs before AUTH (AUTH, HELLO, QUIT, RESET).
    public static let noAuth = CommandFlags(rawValue: 1 << 4)
    /// Needs every shard's part of the current database (KEYS, DBSIZE, FLUSHDB...).
    public static let allShards = CommandFlags(rawValue: 1 << 5)
    /// Not allowed inside MULTI (WATCH, MULTI itself...).
    public static let noMulti = CommandFlags(rawValue: 1 << 6)
    /// Executed by the engine (connection and server state), not on the keyspace.
    public static let engine = CommandFlags(rawValue: 1 << 7)
    public static let denyOOM = CommandFlags(rawValue: 1 << 8)
    public static let blocking = CommandFlags(rawValue: 1 << 9)
    public static let loading = CommandFlags(rawValue: 1 << 10)
    public static let stale = CommandFlags(rawValue: 1 << 11)
    /// Must run on its own even inside EXEC bookkeeping (EXEC, DISCARD, MULTI).
    public static let transaction = CommandFlags(rawValue: 1 << 12)
    /// Registered by a loaded module; the engine runs it through the module host.
    public static let module = CommandFlags(rawValue: 1 << 13)
    /// EVAL and friends; the engine runs them through its Lua host.
    public static let script = CommandFlags(rawValue: 1 << 14)
    /// Only reads the keyspace, through CommandContext's lookups, and changes nothing any
    /// other thread can see: the engine may run it under shared shard locks, beside other
    /// such commands. Given only to commands checked for that (a handler that wrote, or
    /// read a collection through anything but a plain read, would race).
    public static let sharedRead = CommandFlags(rawValue: 1 << 15)
    /// Reads keys its arguments do not name (SORT's BY and GET patterns), on any shard:
    /// the engine holds every shard's lock for it, while only its named keys count as
    /// written (unlike `allShards`, which also stands for "every key").
    public static let readsAnyKey = CommandFlags(rawValue: 1 << 16)
    /// Runs while a module command is busy (Yield past busy-reply-threshold): a module
    /// command created with Redis's `allow-busy` flag.
    public static let allowBusy = CommandFlags(rawValue: 1 << 17)

    /// Whether the command needs every shard's lock.
    public var locksEveryShard: Bool { contains(.allShards) || contains(.readsAnyKey) }

    /// The names COMMAND INFO reports.
    public var names: [String] {
        var out: [String] = []
        if contains(.write) { out.append("write") }
        if contains(.readonly) { out.append("readonly") }
        if contains(.denyOOM) { out.append("denyoom") }
        if contains(.admin) { out.append("admin") }
        if contains(.noAuth) { out.append("no_auth") }
        if contains(.noMulti) { out.append("no_multi") }
        if contains(.blocking) { out.append("blocking") }
        if contains(.loading) { out.append("loading") }
        if contains(.stale) { out.append("stale") }
        if contains(.fast) { out.append("fast") }
        return out
    }
}

/// Positions of key arguments: `first...last` (negative `last` counts from the end) by
/// `step`; `first == 0` means no keys. `finder` replaces this for commands whose key
/// count is an argument (LMPOP numkeys ..., ZUNIONSTORE dest numkeys ...).
public struct KeySpec: Sendable {
    public var first: Int, last: Int, step: Int
    public var finder: (@Sendable ([Bytes]) -> [Int])?

    public init(_ first: Int, _ last: Int, _ step: Int) {
        self.first = first; self.last = last; self.step = step; finder = nil
    }

    public init(finder: @escaping @Sendable ([Bytes]) -> [Int]) {
        first = 0; last = 0; step = 0
        self.finder = finder
    }

    public static let none = KeySpec(0, 0, 0)

    /// Argument indices of the keys in `args` (args[0] is the command name).
    public func positions(_ args: [Bytes]) -> [Int] {
        if let finder { return finder(args) }
        guard first > 0, first < args.count else { return [] }
        let end = last < 0 ? args.count + last : min(last, args.count - 1)
        guard end >= first else { return [] }
        return Array(stride(from: first, through: end, by: step))
    }
}

public typealias CommandHandler = @Sendable (CommandContext) throws(CommandError) -> Void

/// A class, so that looking a command up per request copies one reference, not the
/// whole description. Immutable once the table is built.
public final class CommandSpec: @unchecked Sendable {
    public let name: String
    /// Redis arity: positive is exact, negative is a minimum (both count the name).
    public let arity: Int
    public let flags: CommandFlags
    public let keys: KeySpec
    public let handler: CommandHandler?
    /// Subcommand names for COMMAND DOCS/INFO (CONFIG GET, CLIENT LIST...).
    public let subcommands: [String]
    /// Dense index assigned by `CommandTable`, for per-command statistics arrays.
    public internal(set) var id = -1

    /// Gives a command created after the table was built (a module's) its statistics slot.
    public func assignID(_ id: Int) { self.id = id }

    public init(_ name: String, arity: Int, flags: CommandFlags, keys: KeySpec = .none,
                subcommands: [String] = [], handler: CommandHandler? = nil) {
        self.name = name
        self.arity = arity
        self.flags = flags
        self.keys = keys
        self.handler = handler
        self.subcommands = subcommands
    }

    public func arityMatches(_ n: Int) -> Bool {
        arity >= 0 ? n == arity : n >= -arity
    }
}

/// A command's failure, with the exact text Redis replies (without the leading '-').
public struct CommandError: Error, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }

    public static let wrongType = CommandError("WRONGTYPE Operation against a key holding the wrong kind of value")
    public static let notInteger = CommandError("ERR value is not an integer or out of range")
    public static let notFloat = CommandError("ERR value is not a valid float")
    public static let syntax = CommandError("ERR syntax error")
    public static let noSuchKey = CommandError("ERR no such key")
    public static let overflow = CommandError("ERR increment or decrement would overflow")
    public static let indexOutOfRange = CommandError("ERR index out of range")
    public static let minMaxNotFloat = CommandError("ERR min or max is not a float")
    public static let minMaxNotLex = CommandError("ERR min or max not valid string range item")
    public static let dbIndexOutOfRange = CommandError("ERR DB index is out of range")
    public static let tooBig = CommandError("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
    public static let nanOrInfinity = CommandError("ERR increment would produce NaN or Infinity")
    public static let sameObject = CommandError("ERR source and destination objects are the same")

    public static func wrongArity(_ name: String) -> CommandError {
        CommandError("ERR wrong number of arguments for '\(name)' command")
    }

    public static func unknownSubcommand(_ sub: Bytes, _ command: String) -> CommandError {
        CommandError("ERR unknown subcommand '\(sub.string.prefix(128))'. Try \(command.uppercased()) HELP.")
    }

    /// A known subcommand with arguments it does not take, in the count or in kind.
    public static func subcommandSyntax(_ sub: Bytes, _ command: String) -> CommandError {
        CommandError("ERR unknown subcommand or wrong number of arguments for '\(sub.string.prefix(128))'. Try \(command.uppercased()) HELP.")
    }

    public static func mustBePositive(_ what: String) -> CommandError {
        CommandError("ERR \(what) must be positive")
    }
}
