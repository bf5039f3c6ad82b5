import DequeModule
import Synchronization
import RESP

/// A value stored under a key. Collections are classes so that commands mutate them in
/// place through the entry, without copy-on-write copies of large collections. Hashes and
/// sorted sets are copy-on-write values of one word instead (HashFields, SortedSetValue),
/// as a small one is a single packed buffer and a class around it would cost a third
/// again: they are changed in place through `Entry.modifyHash` and `modifySortedSet`,
/// which leave the entry's copy the only reference while they run.
public enum Value {
    case string(Bytes)
    case list(ListValue)
    case hash(HashFields)
    case set(SetValue)
    case zset(SortedSetValue)
    case stream(StreamValue)
    /// A value of a data type a module defined.
    case module(ModuleValue)

    /// The name TYPE replies with.
    public var typeName: String {
        switch self {
        case .string: return "string"
        case .list: return "list"
        case .hash: return "hash"
        case .set: return "set"
        case .zset: return "zset"
        case .stream: return "stream"
        case .module(let m): return m.type.name
        }
    }

    /// A deep copy (COPY command): the copy shares no mutable storage with the original.
    /// Nil for a module value, whose bytes only its module could copy.
    public func deepCopy() -> Value? {
        switch self {
        case .string(let b): return .string(b)
        case .list(let l): return .list(ListValue(l.items))
        case .hash(let h): return .hash(h)
        case .set(let s): return .set(SetValue(s.members))
        case .zset(let z): return .zset(z.copy())
        case .stream(let s): return .stream(s.copy())
        case .module: return nil
        }
    }
}

/// A module-defined data type, as the keyspace sees it: a name (TYPE's reply) and how to
/// free a value.
public protocol ModuleValueType: AnyObject, Sendable {
    var name: String { get }
    func free(_ value: UnsafeMutableRawPointer?)
}

/// A module type's value. The module owns the memory behind `pointer`; the type's free
/// callback runs when the last reference goes, that is when the key is deleted,
/// overwritten, expired or flushed.
public final class ModuleValue: @unchecked Sendable {
    public let type: any ModuleValueType
    public let pointer: UnsafeMutableRawPointer?

    public init(type: any ModuleValueType, pointer: UnsafeMutableRawPointer?) {
        self.type = type
        self.pointer = pointer
    }

    deinit { type.free(pointer) }
}

public final class ListValue {
    public var items: Deque<Bytes>
    public init(_ items: Deque<Bytes> = []) { self.items = items }
}

public final class SetValue {
    public var members: Set<Bytes>
    public init(_ members: Set<Bytes> = []) { self.members = members }
}

/// One key of a shard's table.
///
/// `access` packs two things into one word: its high 24 bits are how recently or how
/// often the key was used (KeyAccess.swift: Redis's LRU clock, or its LFU counter and
/// decay time), its low 8 bits a tag of the key's table hash that lookups compare before
/// the key (KeyTable.swift). The access bits are written by readers holding the shard
/// lock shared, hence an atomic (relaxed: they are a hint, and only change once a second).
///
/// Layout: 80 bytes with the object header, one of the allocator's size classes, so the
/// fields are ordered to leave no padding (`savedEpoch` and `access` share one word). A
/// key with a TTL is an `ExpiringEntry`, which adds the deadline: most keys never have
/// one, and Redis likewise keeps deadlines apart from its keys (its `expires` table), so
/// they cost nothing to the keys without. Giving a key its first TTL replaces its entry
/// (Database.setExpire returns the new one); a key that loses its TTL keeps the
/// ExpiringEntry with a deadline of 0.
public class Entry {
    public final let key: Bytes
    public final var value: Value
    /// The snapshot that has this key in its file (Snapshot.swift): a key whose number is
    /// not the running snapshot's is still to be written, and is written before it changes.
    public final var savedEpoch: UInt32 = 0
    final let access: Atomic<UInt32>
    final var next: Entry?

    init(key: Bytes, hash: Int, value: Value) {
        self.key = key
        self.access = Atomic(KeyAccess.initialBits() << 8 | UInt32(KeyTable.tag(hash)))
        self.value = value
    }

    /// A copy of `other` with its access bits and snapshot number, not yet in a table.
    init(copying other: Entry) {
        key = other.key
        value = other.value
        savedEpoch = other.savedEpoch
        access = Atomic(other.access.load(ordering: .relaxed))
    }

    @inline(__always)
    final var hashTag: UInt8 { UInt8(truncatingIfNeeded: access.load(ordering: .relaxed)) }

    /// The key's deadline as a Unix time in milliseconds, 0 when the key does not expire.
    /// Set through Database (setExpire, persist), which keeps the TTL count and heap.
    @inline(__always)
    public final var expireAt: Int64 {
        ObjectIdentifier(type(of: self)) == ObjectIdentifier(ExpiringEntry.self)
            ? unsafeDowncast(self, to: ExpiringEntry.self).deadline : 0
    }

    /// This entry as one with a deadline, when it is one.
    @inline(__always)
    final var asExpiring: ExpiringEntry? {
        ObjectIdentifier(type(of: self)) == ObjectIdentifier(ExpiringEntry.self)
            ? unsafeDowncast(self, to: ExpiringEntry.self) : nil
    }
}

/// A key that has, or has had, a TTL: the entry plus its deadline (see Entry).
final class ExpiringEntry: Entry {
    var deadline: Int64 = 0
}

extension Entry {
    /// Changes the hash stored here in place, the entry's reference let go meanwhile so
    /// that the buffer is not copied; nil when the value is not a hash.
    public func modifyHash<R, E: Error>(_ body: (inout HashFields) throws(E) -> R) throws(E) -> R? {
        guard case .hash(var h) = value else { return nil }
        value = .string(Bytes())
        defer { value = .hash(h) }
        return try body(&h)
    }

    /// The same for a sorted set.
    public func modifySortedSet<R, E: Error>(_ body: (inout SortedSetValue) throws(E) -> R) throws(E) -> R? {
        guard case .zset(var z) = value else { return nil }
        value = .string(Bytes())
        defer { value = .zset(z) }
        return try body(&z)
    }

    /// Changes the string stored here in place (see `Bytes.modify`); nil when the value is
    /// not a string.
    public func modifyString<R>(_ body: (inout ByteBuffer) -> R) -> R? {
        guard case .string(var s) = value else { return nil }
        value = .string(Bytes())  // the entry's reference goes, so `s` holds the only one
        defer { value = .string(s) }
        return s.modify(body)
    }
}
