import Engine
import Commands
import RESP

/// The BlockClient family of the module API (the mechanism: ModuleBlocking.swift).
extension ModuleContext {
    /// Files a block for the client this command callback runs for; the engine registers
    /// it when the callback returns. Nil outside a command callback. A block the module
    /// holds a handle to carries one reference for that handle (see ModuleBlock).
    func fileBlock(reply: ModuleCallback?, timeout: ModuleCallback?, free: ModuleBlock.PrivdataRelease?,
                   timeoutMilliseconds: Int, keys: [Bytes], unblockOnDeleted: Bool) -> ModuleBlock? {
        guard kind == .command, let shard, let connection else { return nil }
        let block = ModuleBlock(ctx: self, home: shard.index, connectionID: connection.id, reply: reply, timeout: timeout,
                                free: free, timeoutMilliseconds: max(0, timeoutMilliseconds), keys: keys,
                                unblockOnDeleted: unblockOnDeleted, privdata: nil)
        if denyBlocking {
            // As Redis: the handle is valid, the client does not block and hears why.
            block.refused = true
            self.reply.add(.error("ERR Blocking module command called from transaction"))
        }
        newBlocks.append(block)
        if block.moduleHoldsHandle { _ = Unmanaged.passRetained(block) }
        return block
    }
}

extension ModuleAPI {
    typealias Callback = ModuleCommand.Function
    typealias FreeFunction = ModuleBlock.FreeFunction

    /// BlockClient / BlockClientOnKeys[WithFlags]: only from a command callback.
    static func blockClient(_ c: RawPointer, reply: Callback?, timeout: Callback?, free: FreeFunction?, timeoutMS: Int64,
                            keys: [Bytes], privdata: RawPointer, flags: Int32) -> RawPointer {
        let block = ModuleContext.from(c).fileBlock(reply: reply.map { .c($0) }, timeout: timeout.map { .c($0) },
                                                    free: free.map { .c($0) }, timeoutMilliseconds: Int(timeoutMS),
                                                    keys: keys, unblockOnDeleted: flags & 1 != 0)
        block?.privdata = privdata
        return block?.handle
    }

    static func keys(_ argv: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, _ n: Int32) -> [Bytes] {
        var out: [Bytes] = []
        for i in 0..<Int(max(0, n)) { out.append(ModuleString.from(argv![i]).bytes) }
        var seen = Set<Bytes>()
        return out.filter { seen.insert($0).inserted }
    }

    static func registerBlocking() {
        register("BlockClient", { c, reply, timeout, free, ms in
            ModuleAPI.blockClient(c, reply: reply, timeout: timeout, free: free, timeoutMS: ms, keys: [], privdata: nil, flags: 0)
        } as @convention(c) (RawPointer, Callback?, Callback?, FreeFunction?, Int64) -> RawPointer)
        register("BlockClientOnKeys", { c, reply, timeout, free, ms, argv, n, privdata in
            ModuleAPI.blockClient(c, reply: reply, timeout: timeout, free: free, timeoutMS: ms, keys: ModuleAPI.keys(argv, n), privdata: privdata, flags: 0)
        } as @convention(c) (RawPointer, Callback?, Callback?, FreeFunction?, Int64, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, Int32, RawPointer) -> RawPointer)
        register("BlockClientOnKeysWithFlags", { c, reply, timeout, free, ms, argv, n, privdata, flags in
            ModuleAPI.blockClient(c, reply: reply, timeout: timeout, free: free, timeoutMS: ms, keys: ModuleAPI.keys(argv, n), privdata: privdata, flags: flags)
        } as @convention(c) (RawPointer, Callback?, Callback?, FreeFunction?, Int64, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, Int32, RawPointer, Int32) -> RawPointer)
        register("UnblockClient", { bc, privdata in
            guard let bc else { return ModuleAPI.err }
            let block = ModuleBlock.from(bc)
            if !block.moduleHoldsHandle {
                // Blocked on keys: as in Redis, the timeout callback answers (the reply
                // callback needs a ready key), privdata is left alone, and without a
                // timeout callback nothing happens.
                guard block.timeoutCallback != nil else { return ModuleAPI.err }
                ModuleAPI.server?.shards[block.home].post(.run { $0.moduleUnblockedOnKeys(block) })
                return ModuleAPI.ok
            }
            if privdata != nil || block.moduleHoldsHandle { block.privdata = privdata }
            ModuleAPI.server?.shards[block.home].post(.run { $0.moduleUnblocked(block, abort: false) })
            return ModuleAPI.ok
        } as @convention(c) (RawPointer, RawPointer) -> Int32)
        register("AbortBlock", { bc in
            guard let bc else { return ModuleAPI.err }
            let block = ModuleBlock.from(bc)
            block.aborted = true
            ModuleAPI.server?.shards[block.home].post(.run { $0.moduleUnblocked(block, abort: true) })
            return ModuleAPI.ok
        } as @convention(c) (RawPointer) -> Int32)
        register("IsBlockedReplyRequest", { c in
            ModuleContext.from(c).kind == .blockedReply ? 1 : 0
        } as @convention(c) (RawPointer) -> Int32)
        register("IsBlockedTimeoutRequest", { c in
            ModuleContext.from(c).kind == .blockedTimeout ? 1 : 0
        } as @convention(c) (RawPointer) -> Int32)
        register("GetBlockedClientPrivateData", { c in
            ModuleContext.from(c).block?.privdata
        } as @convention(c) (RawPointer) -> RawPointer)
        register("GetBlockedClientHandle", { c in
            ModuleContext.from(c).block?.handle
        } as @convention(c) (RawPointer) -> RawPointer)
        register("GetBlockedClientReadyKey", { c in
            let ctx = ModuleContext.from(c)
            guard let key = ctx.readyKey else { return nil }
            // Owned by the callback: freed when it returns, like an auto-memory string.
            let s = ModuleString.make(key)
            ctx.autoStrings.append(s)
            return Unmanaged.passRetained(s).toOpaque()
        } as @convention(c) (RawPointer) -> RawPointer)
        register("BlockedClientDisconnected", { c in
            ModuleContext.from(c).kind == .disconnect ? 1 : 0
        } as @convention(c) (RawPointer) -> Int32)
        register("SignalKeyAsReady", { c, key in
            let ctx = ModuleContext.from(c)
            let k = ModuleString.from(key).bytes
            ModuleKey.withLocks(ctx) { cc in cc.db(k).signalReady(k) }
        } as @convention(c) (RawPointer, UnsafeRawPointer?) -> Void)
        register("SetDisconnectCallback", { bc, cb in
            ModuleBlock.from(bc).disconnectCallback = cb
        } as @convention(c) (RawPointer, FreeFunction?) -> Void)
        register("BlockClientSetPrivateData", { bc, p in
            ModuleBlock.from(bc).privdata = p
        } as @convention(c) (RawPointer, RawPointer) -> Void)
        register("BlockClientGetPrivateData", { bc in
            ModuleBlock.from(bc).privdata
        } as @convention(c) (RawPointer) -> RawPointer)
        register("BlockedClientMeasureTimeStart", { bc in
            ModuleBlock.from(bc).measureStart.store(monotonicMicroseconds(), ordering: .releasing)
            return ModuleAPI.ok
        } as @convention(c) (RawPointer) -> Int32)
        register("BlockedClientMeasureTimeEnd", { bc in
            let block = ModuleBlock.from(bc)
            let start = block.measureStart.exchange(-1, ordering: .acquiringAndReleasing)
            guard start >= 0 else { return ModuleAPI.err }
            block.measuredMicroseconds.add(monotonicMicroseconds() - start, ordering: .releasing)
            return ModuleAPI.ok
        } as @convention(c) (RawPointer) -> Int32)
    }
}
