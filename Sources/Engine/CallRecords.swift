import Commands
import Keyspace
import RESP

// What a command leaves behind besides its reply and its effects: INFO commandstats
// (calls, usec, failed_calls), the latency histogram (INFO latencystats), SLOWLOG and
// MONITOR. Whoever ran the command (a client, EXEC for a queued command, a script's
// redis.call, a module's Call, a JavaScript client.call), it is recorded here, by
// `Shard.record`, as Redis's call() records every command it runs:
// - every command counts in commandstats with its own time, a queued one too (EXEC's
//   own time includes its commands', as in Redis);
// - SLOWLOG takes a command slower than slowlog-log-slower-than under the client that
//   caused it (a script's commands under the script's caller, as Valkey names them),
//   except EXEC (its commands are logged instead: `skip_slowlog`) and AUTH/HELLO, whose
//   arguments may hold a password;
// - MONITOR gets a line for a client's command and for a script's redis.call (peer
//   "lua"); EVAL and FCALL are fed before the commands they run (Execution.swift).
// A blocking command that waits is counted when it runs, and its latency sample and
// SLOWLOG entry come when it is unblocked (`reportUnblocked`), with its wait excluded.
//
// Shard statistics belong to their shard's thread: a call made on a thread that is no
// shard's (a module thread, a JavaScript library) is posted to shard 0, whose inbox keeps
// it ahead of any later INFO.

/// The client a SLOWLOG entry names.
package struct CallCaller: Sendable {
    let peer: String
    let name: String

    package init(peer: String, name: String) {
        self.peer = peer
        self.name = name
    }
}

/// One command that ran, for the records (see the top of this file).
package struct CallRecord: Sendable {
    let commandID: Int
    let name: String
    /// `container|subcommand` for a container's call (`config|set`), which Redis counts
    /// under that name.
    let subcommand: String?
    let args: [Bytes]
    let db: Int
    let microseconds: Int
    let failed: Bool
    /// Who the SLOWLOG entry names; nil when the call is reported later (a blocked
    /// command) or never (a module's Call).
    let slowlogCaller: CallCaller?
    /// Whether the latency histogram takes a sample now (not for a blocked command: when
    /// it is unblocked).
    let samplesLatency: Bool
    /// The MONITOR line's peer; nil for no line.
    let monitorPeer: String?
    /// Whether the command may appear in MONITOR (admin commands never do).
    let monitorable: Bool

    package init(_ spec: CommandSpec, _ args: [Bytes], db: Int, microseconds: Int, failed: Bool,
         slowlogCaller: CallCaller?, samplesLatency: Bool? = nil, monitorPeer: String?) {
        self.samplesLatency = samplesLatency ?? (slowlogCaller != nil)
        commandID = spec.id
        name = spec.name
        subcommand = spec.subcommands.isEmpty || args.count < 2 ? nil : "\(spec.name)|\(args[1].string.lowercased())"
        self.args = args
        self.db = db
        self.microseconds = microseconds
        self.failed = failed
        self.slowlogCaller = slowlogCaller
        self.monitorPeer = monitorPeer
        monitorable = !spec.flags.contains(.admin)
    }
}

extension Shard {
    /// Records a command that ran on this shard's thread.
    package func record(_ call: CallRecord) {
        let id = server.statID(call.commandID, subcommand: call.subcommand)
        stats.calls[id] += 1
        stats.microseconds[id] += call.microseconds
        if call.failed { stats.failedCalls[id] += 1 }
        if call.samplesLatency && server.config.latencyTracking.load(ordering: .relaxed) {
            latencies.record(id, microseconds: call.microseconds)
        }
        if let caller = call.slowlogCaller {
            recordSlow(call.name, call.args, microseconds: call.microseconds, caller: caller)
        }
        if let peer = call.monitorPeer, call.monitorable { feedMonitors(line: call, peer: peer) }
    }

    /// The SLOWLOG entry of a command past the threshold.
    private func recordSlow(_ name: String, _ args: [Bytes], microseconds: Int, caller: CallCaller) {
        guard SlowLog.isSlow(microseconds, server.config), name != "exec", name != "auth", name != "hello" else { return }
        server.slowlog.record(args, microseconds: microseconds, peer: caller.peer, name: caller.name,
                              maxLength: server.config.slowlogMaxLength.load(ordering: .relaxed))
    }

    /// A blocking command's latency sample and SLOWLOG entry, when it is unblocked.
    func reportUnblocked(_ conn: Connection, _ args: [Bytes], microseconds: Int, failed: Bool) {
        guard let spec = server.commands.lookup(args[0]) else { return }
        // Its call was counted when it blocked; an error reply now makes it a failed one.
        if failed { stats.failedCalls[spec.id] += 1 }
        if server.config.latencyTracking.load(ordering: .relaxed) { latencies.record(spec.id, microseconds: microseconds) }
        recordSlow(spec.name, args, microseconds: microseconds, caller: conn.caller)
    }

    private func feedMonitors(line call: CallRecord, peer: String) {
        guard server.monitors.active.load(ordering: .relaxed) > 0 else { return }
        let line = MonitorFeed.line(db: call.db, peer: peer, name: call.name, call.args)
        for s in server.monitors.shardsWithMonitors {
            server.shards[s].post(.run { $0.deliverToMonitors(line) })
        }
    }
}

extension Server {
    /// Records a call from any thread: on `shard` when the caller runs on that shard's
    /// thread, otherwise (`shard` nil) through shard 0's inbox.
    package func record(_ call: CallRecord, on shard: Shard?) {
        if let shard { shard.record(call) } else { shards[0].post(.run { $0.record(call) }) }
    }
}

extension Connection {
    /// How SLOWLOG names this client.
    var caller: CallCaller { CallCaller(peer: peer, name: name) }
}
