import Engine
import Commands
import DequeModule
import Keyspace
import RESP
#if canImport(Glibc)
import Glibc
#endif

/// `RedisModuleKey`: a key opened by a module, read or written directly in its shard's
/// keyspace. The context must hold the shard locks (a command callback does; a module
/// thread must have called ThreadSafeContextLock), as Redis requires the global lock.
///
/// Invariants: the handle is one reference, dropped by CloseKey (or auto-memory). A
/// StringDMA buffer is a copy; CloseKey of a key opened for writing stores it back.
final class ModuleKey {
    unowned let ctx: ModuleContext
    let key: Bytes
    let db: Int
    let mode: Int32
    private var dma: UnsafeMutablePointer<CChar>?
    private var dmaCount = 0
    private var closed = false

    init(ctx: ModuleContext, key: Bytes, mode: Int32) {
        self.ctx = ctx
        self.key = key
        db = ctx.db
        self.mode = mode
    }

    var writable: Bool { mode & 2 != 0 }

    static func from(_ p: UnsafeMutableRawPointer?) -> ModuleKey {
        Unmanaged<ModuleKey>.fromOpaque(p!).takeUnretainedValue()
    }

    /// Runs `body` on the context's command context inside the module's atomic section,
    /// entering one just for it when the context holds none.
    static func withLocks<T>(_ ctx: ModuleContext, _ body: (CommandContext) -> T) -> T {
        let cc = ctx.commandContext
        let entered = !ctx.holdsLocks
        if entered {
            ModuleAPI.lockAll(ctx)
            ModuleYield.sectionBegan(ctx)
        }
        let savedDB = cc.dbIndex
        cc.dbIndex = ctx.db
        cc.now = ShardStore.nowMilliseconds()
        let result = body(cc)
        cc.dbIndex = savedDB
        if entered { ModuleAPI.unlockAll(ctx) }
        return result
    }

    func withEntry<T>(_ body: (CommandContext, Database, Entry?) -> T) -> T {
        ModuleKey.withLocks(ctx) { cc in
            let database = cc.db(key, index: db)
            return body(cc, database, database.lookup(key, now: cc.now))
        }
    }

    func stringDMA(_ len: UnsafeMutablePointer<Int>?) -> UnsafeMutablePointer<CChar>? {
        if dma == nil {
            let bytes: Bytes? = withEntry { _, _, e in
                if case .string(let b)? = e?.value { return b }
                return e == nil ? Bytes() : nil
            }
            guard let bytes else { return nil }
            dma = cStringCopy(bytes)
            dmaCount = bytes.count
        }
        len?.pointee = dmaCount
        return dma
    }

    func close() {
        guard !closed else { return }
        closed = true
        if let dma {
            if writable {
                let bytes = Bytes(UnsafeRawBufferPointer(start: dma, count: dmaCount))
                withEntry { cc, database, _ in
                    database.overwrite(key, .string(bytes), now: cc.now, keepTTL: true)
                    cc.dirty += 1
                }
            }
            dma.deallocate()
            self.dma = nil
        }
    }
}

extension ModuleAPI {
    static func registerKeys() {
        register("OpenKey", { c, name, mode in
            let ctx = ModuleContext.from(c)
            let key = ModuleKey(ctx: ctx, key: ModuleString.from(name).bytes, mode: mode)
            // Redis returns NULL for a missing key opened read-only.
            if mode & 2 == 0 && key.withEntry({ $2 == nil }) { return nil }
            if ctx.autoMemory { ctx.autoKeys.append(key) }
            return Unmanaged.passRetained(key).toOpaque()
        } as @convention(c) (RawPointer, UnsafeRawPointer?, Int32) -> RawPointer)
        register("CloseKey", { k in
            guard let k else { return }
            let key = ModuleKey.from(k)
            key.close()
            if let i = key.ctx.autoKeys.firstIndex(where: { $0 === key }) { key.ctx.autoKeys.remove(at: i) }
            Unmanaged<ModuleKey>.fromOpaque(k).release()
        } as @convention(c) (RawPointer) -> Void)
        register("KeyType", { k in
            guard let k else { return 0 }
            return ModuleKey.from(k).withEntry { _, _, e -> Int32 in
                switch e?.value {
                case nil: return 0
                case .string?: return 1
                case .list?: return 2
                case .hash?: return 3
                case .set?: return 4
                case .zset?: return 5
                case .stream?: return 7
                case .module?: return 6
                }
            }
        } as @convention(c) (RawPointer) -> Int32)
        register("ValueLength", { k in
            guard let k else { return 0 }
            return ModuleKey.from(k).withEntry { _, _, e -> Int in
                switch e?.value {
                case nil: return 0
                case .string(let b)?: return b.count
                case .list(let l)?: return l.items.count
                case .hash(let h)?: return h.count
                case .set(let s)?: return s.members.count
                case .zset(let z)?: return z.count
                case .stream(let s)?: return s.count
                case .module?: return 0
                }
            }
        } as @convention(c) (RawPointer) -> Int)
        register("DeleteKey", { k in
            guard let k, ModuleKey.from(k).writable else { return ModuleAPI.err }
            ModuleKey.from(k).withEntry { cc, database, e in
                if let e { database.removeEntry(e); cc.dirty += 1 }
            }
            return ModuleAPI.ok
        } as @convention(c) (RawPointer) -> Int32)
        register("StringSet", { k, s in
            guard let k, ModuleKey.from(k).writable else { return ModuleAPI.err }
            let key = ModuleKey.from(k), bytes = ModuleString.from(s).bytes
            key.withEntry { cc, database, _ in
                database.overwrite(key.key, .string(bytes), now: cc.now)
                cc.dirty += 1
            }
            return ModuleAPI.ok
        } as @convention(c) (RawPointer, UnsafeRawPointer?) -> Int32)
        register("StringDMA", { k, len, _ in
            guard let k else { return nil }
            return ModuleKey.from(k).stringDMA(len)
        } as @convention(c) (RawPointer, UnsafeMutablePointer<Int>?, Int32) -> UnsafeMutablePointer<CChar>?)
        register("ListPush", { k, whereTo, s in
            guard let k, ModuleKey.from(k).writable, let s else { return ModuleAPI.err }
            let key = ModuleKey.from(k), element = ModuleString.from(s).bytes
            return key.withEntry { cc, database, e -> Int32 in
                let list: ListValue
                switch e?.value {
                case .list(let l)?: list = l; database.signalReady(key.key)
                case nil: list = ListValue(); database.add(key.key, .list(list))
                default: errno = EINVAL; return ModuleAPI.err
                }
                if whereTo == 0 { list.items.prepend(element) } else { list.items.append(element) }
                cc.dirty += 1
                return ModuleAPI.ok
            }
        } as @convention(c) (RawPointer, Int32, UnsafeRawPointer?) -> Int32)
        register("ListPop", { k, whereFrom in
            guard let k, ModuleKey.from(k).writable else { return nil }
            let key = ModuleKey.from(k)
            return key.withEntry { cc, database, e -> RawPointer in
                guard let e, case .list(let l) = e.value, !l.items.isEmpty else { return nil }
                let v = whereFrom == 0 ? l.items.removeFirst() : l.items.removeLast()
                if l.items.isEmpty { database.removeEntry(e) }
                cc.dirty += 1
                return ModuleString.create(v, in: key.ctx)
            }
        } as @convention(c) (RawPointer, Int32) -> RawPointer)
        register("GetExpire", { k in
            guard let k else { return -1 }
            return ModuleKey.from(k).withEntry { cc, _, e -> Int64 in
                guard let e, e.expireAt != 0 else { return -1 }
                return max(0, e.expireAt - cc.now)
            }
        } as @convention(c) (RawPointer) -> Int64)
        register("SetExpire", { k, ms in
            guard let k, ModuleKey.from(k).writable else { return ModuleAPI.err }
            return ModuleKey.from(k).withEntry { cc, database, e -> Int32 in
                guard let e else { return ModuleAPI.err }
                if ms < 0 { database.persist(e) } else { _ = database.setExpire(e, at: cc.now + ms) }
                cc.dirty += 1
                return ModuleAPI.ok
            }
        } as @convention(c) (RawPointer, Int64) -> Int32)
    }
}
