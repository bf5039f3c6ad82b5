import Commands
import Keyspace
import RESP

// Pub/Sub across shards.
//
// A subscribed connection is another kind of waiting client: its subscriptions live on
// its home shard (`Shard.subscribers`, touched only by that thread) and are counted in
// the server-wide `PubSubRegistry`. PUBLISH runs on the publisher's shard: it asks the
// registry how many receivers there are and which shards hold them, delivers to its own
// subscribers at once and posts the message to each other shard's inbox. An inbox keeps
// each producer's order, so every subscriber sees one publisher's messages in publish
// order. Each delivery checks the subscriber's pending output against
// `client-output-buffer-limit pubsub`: a subscriber that stops reading is disconnected,
// and nobody else waits for it.
//
// In RESP2 a subscribed connection may only (un)subscribe, PING, QUIT and RESET; in
// RESP3 messages arrive as push frames and every command stays available.
extension Shard {
    typealias Kind = PubSubRegistry.Kind

    static let subscribeReply: [Kind: (on: Bytes, off: Bytes)] = [
        .channel: (Bytes("subscribe"), Bytes("unsubscribe")),
        .pattern: (Bytes("psubscribe"), Bytes("punsubscribe")),
        .shardChannel: (Bytes("ssubscribe"), Bytes("sunsubscribe")),
    ]

    /// The count a (un)subscribe reply carries: shard channels count apart, as in Redis.
    private func subscriptionCount(_ conn: Connection, _ kind: Kind) -> Int {
        kind == .shardChannel ? conn.subscriptions[Kind.shardChannel.rawValue].count
            : conn.subscriptions[Kind.channel.rawValue].count + conn.subscriptions[Kind.pattern.rawValue].count
    }

    func subscribe(_ conn: Connection, _ kind: Kind, _ names: ArraySlice<Bytes>, _ reply: ReplyWriter) {
        for name in names {
            if conn.subscriptions[kind.rawValue].insert(name).inserted {
                subscribers[kind.rawValue][name, default: [:]][conn.id] = conn
                server.pubsub.add(kind, name, shard: index)
            }
            reply.pushHeader(3)
            reply.bulk(Shard.subscribeReply[kind]!.on)
            reply.bulk(name)
            reply.integer(subscriptionCount(conn, kind))
        }
    }

    /// Unsubscribes from `names`, or from everything of `kind` when empty.
    func unsubscribe(_ conn: Connection, _ kind: Kind, _ names: ArraySlice<Bytes>, _ reply: ReplyWriter?) {
        let targets = names.isEmpty ? Array(conn.subscriptions[kind.rawValue]) : Array(names)
        if targets.isEmpty, let reply {
            reply.pushHeader(3)
            reply.bulk(Shard.subscribeReply[kind]!.off)
            reply.null()
            reply.integer(subscriptionCount(conn, kind))
            return
        }
        for name in targets {
            if conn.subscriptions[kind.rawValue].remove(name) != nil {
                subscribers[kind.rawValue][name]?[conn.id] = nil
                if subscribers[kind.rawValue][name]?.isEmpty == true { subscribers[kind.rawValue][name] = nil }
                server.pubsub.remove(kind, name, shard: index)
            }
            guard let reply else { continue }
            reply.pushHeader(3)
            reply.bulk(Shard.subscribeReply[kind]!.off)
            reply.bulk(name)
            reply.integer(subscriptionCount(conn, kind))
        }
    }

    /// Drops every subscription of a closing (or RESET) connection.
    func unsubscribeAll(_ conn: Connection) {
        guard conn.isSubscribed else { return }
        for kind in [Kind.channel, .pattern, .shardChannel] { unsubscribe(conn, kind, [], nil) }
    }

    /// PUBLISH / SPUBLISH: returns the receivers counted. Inside a transaction or a script
    /// (`deferOwn`), this shard's own subscribers get the message after the reply.
    package func publish(_ channel: Bytes, _ message: Bytes, sharded: Bool, deferOwn: Bool = false) -> Int {
        let (receivers, shards) = server.pubsub.route(channel, sharded: sharded)
        for s in shards {
            if s == index {
                if deferOwn || context.inTransaction {
                    deferredMessages.append((channel, message, sharded))
                } else {
                    deliverMessage(channel, message, sharded: sharded)
                }
            } else {
                server.shards[s].post(.run { $0.deliverMessage(channel, message, sharded: sharded) })
            }
        }
        return receivers
    }

    /// Writes a published message to this shard's subscribers of `channel` (and its
    /// matching patterns).
    func deliverMessage(_ channel: Bytes, _ message: Bytes, sharded: Bool) {
        let kind: Kind = sharded ? .shardChannel : .channel
        if let conns = subscribers[kind.rawValue][channel] {
            for conn in conns.values where !conn.closing && !conn.overOutputLimit {
                let w = ReplyWriter(buffer: conn.output, protocolVersion: conn.protocolVersion)
                w.pushHeader(3)
                w.bulk(sharded ? Bytes("smessage") : Bytes("message"))
                w.bulk(channel)
                w.bulk(message)
                sent(to: conn)
            }
        }
        guard !sharded else { return }
        for (pattern, conns) in subscribers[Kind.pattern.rawValue] where Glob.matches(pattern, channel) {
            for conn in conns.values where !conn.closing && !conn.overOutputLimit {
                let w = ReplyWriter(buffer: conn.output, protocolVersion: conn.protocolVersion)
                w.pushHeader(4)
                w.bulk(Bytes("pmessage"))
                w.bulk(pattern)
                w.bulk(channel)
                w.bulk(message)
                sent(to: conn)
            }
        }
    }

    /// Flushes a subscriber and applies the pubsub output-buffer limits to it.
    private func sent(to conn: Connection) {
        let config = server.config
        flushWithinLimits(conn, hard: config.pubsubHardLimit.load(ordering: .relaxed),
                          soft: config.pubsubSoftLimit.load(ordering: .relaxed),
                          softSeconds: config.pubsubSoftSeconds.load(ordering: .relaxed))
    }

    /// Publishes what the last command recorded (and the expirations and new keys the
    /// keyspace logged) as keyspace notifications. Call with no shard lock held.
    package func publishKeyspaceEvents(includingMessages: Bool = true) {
        if includingMessages && !deferredMessages.isEmpty {
            let messages = deferredMessages
            deferredMessages.removeAll()
            for m in messages { deliverMessage(m.channel, m.message, sharded: m.sharded) }
        }
        let flags = NotifyFlags(rawValue: server.config.notifyFlags.load(ordering: .relaxed))
        var events = pendingKeyEvents
        events += context.events
        pendingKeyEvents.removeAll(keepingCapacity: true)
        context.events.removeAll(keepingCapacity: true)
        guard flags.isActive else { return }
        for e in events {
            if flags.contains(.keyspace) {
                var channel = Array("__keyspace@\(e.db)__:".utf8)
                e.key.withUnsafeBytes { channel.append(contentsOf: $0) }
                _ = publish(channel.withUnsafeBytes { Bytes($0) }, Bytes(e.event), sharded: false)
            }
            if flags.contains(.keyevent) {
                _ = publish(Bytes("__keyevent@\(e.db)__:\(e.event)"), e.key, sharded: false)
            }
        }
    }

    /// RESP2 clients in subscribed mode may run only these.
    static let subscribedModeCommands: Set<String> = ["subscribe", "unsubscribe", "psubscribe", "punsubscribe",
                                                      "ssubscribe", "sunsubscribe", "ping", "quit", "reset"]
}

/// SUBSCRIBE, PUBLISH, PUBSUB and the rest, as engine commands.
enum PubSubCommands {
    typealias Kind = PubSubRegistry.Kind

    // (Un)subscribe confirmations are pushes: like messages, they reach a client that
    // silenced its replies with CLIENT REPLY OFF or SKIP (as in Redis 7.2 and Valkey),
    // since a subscriber waits for them.
    static func subscribeHandler(_ kind: Kind) -> EngineHandler {
        { shard, conn, args, reply in
            shard.subscribe(conn, kind, args[1...], shard.pushWriter(for: conn, instead: reply))
            return false
        }
    }

    static func unsubscribeHandler(_ kind: Kind) -> EngineHandler {
        { shard, conn, args, reply in
            shard.unsubscribe(conn, kind, args[1...], shard.pushWriter(for: conn, instead: reply))
            return false
        }
    }

    static let table: [(CommandSpec, EngineHandler)] = [
        (EngineCommands.spec("subscribe", -2, [.loading, .stale]), subscribeHandler(.channel)),
        (EngineCommands.spec("psubscribe", -2, [.loading, .stale]), subscribeHandler(.pattern)),
        (EngineCommands.spec("ssubscribe", -2, [.loading, .stale]), subscribeHandler(.shardChannel)),
        (EngineCommands.spec("unsubscribe", -1, [.loading, .stale]), unsubscribeHandler(.channel)),
        (EngineCommands.spec("punsubscribe", -1, [.loading, .stale]), unsubscribeHandler(.pattern)),
        (EngineCommands.spec("sunsubscribe", -1, [.loading, .stale]), unsubscribeHandler(.shardChannel)),
        (EngineCommands.spec("publish", 3, [.fast, .loading, .stale]), { shard, _, args, reply in
            reply.integer(shard.publish(args[1], args[2], sharded: false, deferOwn: true))
            return false
        }),
        (EngineCommands.spec("spublish", 3, [.fast, .loading, .stale]), { shard, _, args, reply in
            reply.integer(shard.publish(args[1], args[2], sharded: true, deferOwn: true))
            return false
        }),
        (EngineCommands.spec("pubsub", -2, [.loading, .stale],
                             subcommands: ["channels", "numsub", "numpat", "shardchannels", "shardnumsub", "help"]), pubsub),
    ]

    static func pubsub(_ shard: Shard, _ conn: Connection, _ args: [Bytes], _ reply: ReplyWriter) -> Bool {
        let registry = shard.server.pubsub
        let sub = args[1]
        func arity(_ ok: Bool) -> Bool {
            if !ok { reply.error("ERR wrong number of arguments for 'pubsub|\(sub.string.lowercased())' command") }
            return ok
        }
        if sub.equalsIgnoringCase("channels") || sub.equalsIgnoringCase("shardchannels") {
            guard arity(args.count <= 3) else { return true }
            let kind: Kind = sub.equalsIgnoringCase("channels") ? .channel : .shardChannel
            reply.bulkArray(registry.names(kind, matching: args.count == 3 ? args[2] : nil))
        } else if sub.equalsIgnoringCase("numsub") || sub.equalsIgnoringCase("shardnumsub") {
            let kind: Kind = sub.equalsIgnoringCase("numsub") ? .channel : .shardChannel
            reply.mapHeader(args.count - 2)
            for name in args.dropFirst(2) {
                reply.bulk(name)
                reply.integer(registry.subscriberCount(kind, name))
            }
        } else if sub.equalsIgnoringCase("numpat") {
            guard arity(args.count == 2) else { return true }
            reply.integer(registry.count(.pattern))
        } else if sub.equalsIgnoringCase("help") {
            reply.bulkArray(["PUBSUB <subcommand> [<arg> ...]", "CHANNELS [<pattern>]", "NUMPAT", "NUMSUB [<channel> ...]",
                             "SHARDCHANNELS [<pattern>]", "SHARDNUMSUB [<shardchannel> ...]"])
        } else {
            reply.error(CommandError.unknownSubcommand(sub, "pubsub").message)
            return true
        }
        return false
    }
}
