import ArgumentParser
import BerthClient
import Foundation

/// berth-bench: what Berth exists for, measured against any RESP server.
///
///     berth-bench run --port 6379 --label redis --json out/redis.json
///     berth-bench report out/*.json --baseline redis --markdown out/report.md --svg out/latency.svg
@main
struct BerthBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "berth-bench",
        abstract: "Blocking and unblocking latency, timeout precision and queue hand-off throughput of a RESP server.",
        subcommands: [Run.self, Report.self])
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Measure one server and write its JSON results.")

    @Option var host = "127.0.0.1"
    @Option var port = 6379
    @Option(help: "Name of the server in reports.") var label = "server"
    @Option(help: "Where to write the JSON results.") var json: String?
    @Option(help: "Wake and unblock samples per repeat.") var iterations = 2000
    @Option(help: "Times each measurement is repeated (spread is reported).") var repeats = 3
    @Option(help: "Background connections running pipelined GET/SET for the loaded runs (0: unloaded only).") var load = 8
    @Option(help: "Blocked-client counts for timeout precision.") var timeoutClients = "1,1000,10000"
    @Option(help: "Timeout of the blocked clients in timeout precision, ms.") var timeoutMs = 100
    @Option(help: "Messages through the queues in the hand-off test.") var messages = 20000
    @Option var producers = 4
    @Option var consumers = 4
    @Option var queues = 4
    @Option(help: "Subscribers in the Pub/Sub fan-out test.") var subscribers = 32
    @Option(help: "Comma-separated subset of wake,unblock,timeout,handoff,pubsub,module,script,js,memory (module: the server must have modules/build/blockdemo.so loaded; js: a server with TFUNCTION).")
    var only = "wake,unblock,timeout,handoff,pubsub,module,script,js,memory"
    @Option(help: "Connections opened, then blocked, for the memory-per-client measurement.") var memoryClients = 10000

    func run() throws {
        let t = try Topology.discover(host: host, port: port)
        let parts = Set(only.split(separator: ",").map(String.init))
        var results: [Measurement] = []
        if parts.contains("memory") {
            // First, on a fresh server: what a connection costs, idle and parked in BLPOP.
            let (idle, blocked) = try Scenarios.memoryPerClient(t, clients: memoryClients)
            for (name, bytes) in [("memory per idle connection", idle), ("memory per blocked client", blocked)] {
                var m = Measurement(name: name, load: 0, unit: "bytes", samples: memoryClients)
                m.throughput = bytes
                m.note = "\(memoryClients) clients, used_memory_rss"
                results.append(m)
                log(m)
            }
        }
        for loadConnections in load > 0 ? [0, load] : [0] {
            let background = loadConnections > 0 ? try BackgroundLoad(topology: t, connections: loadConnections) : nil
            defer { background?.stop() }
            func repeated(_ body: () throws -> [UInt64]) throws -> [[UInt64]] { try (0..<repeats).map { _ in try body() } }
            if parts.contains("wake") {
                let floor = try repeated { try Scenarios.pingRoundTrip(t, iterations: iterations) }
                results.append(.latency("baseline PING round trip", load: loadConnections, repeats: floor))
                log(results.last!)
                for kind in Scenarios.Wake.allCases {
                    for cross in [false, true] {
                        let samples = try repeated {
                            try t.withClientsStaying { try Scenarios.wakeLatency(t, kind, crossShard: cross, iterations: iterations) }
                        }
                        let name = "wake \(kind.rawValue) \(cross ? "cross-shard" : "same-shard")"
                        results.append(.latency(name, load: loadConnections, repeats: samples, note: t.shards == 1 ? "one shard" : nil))
                        log(results.last!)
                    }
                }
            }
            if parts.contains("unblock") {
                for error in [false, true] {
                    let samples = try repeated {
                        try t.withClientsStaying { try Scenarios.unblockLatency(t, error: error, iterations: iterations / 2) }
                    }
                    results.append(.latency("unblock CLIENT UNBLOCK \(error ? "ERROR" : "TIMEOUT")", load: loadConnections, repeats: samples))
                    log(results.last!)
                }
            }
            if parts.contains("module") {
                if Scenarios.hasBlockdemo(t) {
                    let samples = try repeated { try Scenarios.moduleCompletion(t, iterations: iterations) }
                    results.append(.latency("module UnblockClient->reply", load: loadConnections, repeats: samples,
                                            note: "blockdemo.stamp"))
                    log(results.last!)
                } else {
                    FileHandle.standardError.write("\(label): no blockdemo module loaded, module latency skipped\n".data(using: .utf8)!)
                }
            }
            if parts.contains("script") {
                for function in [false, true] {
                    let samples = try repeated { try Scenarios.scriptRoundTrip(t, function: function, iterations: iterations) }
                    results.append(.latency(function ? "script FCALL round trip" : "script EVALSHA round trip",
                                            load: loadConnections, repeats: samples))
                    log(results.last!)
                }
            }
            if parts.contains("js") {
                if Scenarios.loadJavaScriptBench(t) {
                    for kind in Scenarios.JavaScriptCall.allCases {
                        let samples = try repeated { try Scenarios.javaScriptRoundTrip(t, kind, iterations: iterations) }
                        results.append(.latency("js \(kind.rawValue) round trip", load: loadConnections, repeats: samples))
                        log(results.last!)
                    }
                } else {
                    FileHandle.standardError.write("\(label): no TFUNCTION here, JavaScript latency skipped\n".data(using: .utf8)!)
                }
            }
            if parts.contains("timeout") {
                for clients in timeoutClients.split(separator: ",").compactMap({ Int($0) }) {
                    let rounds = clients == 1 ? 40 : 1
                    let samples = try repeated {
                        try (0..<rounds).flatMap { _ in try Scenarios.timeoutLateness(t, clients: clients, timeoutMs: timeoutMs) }
                    }
                    results.append(.latency("timeout lateness, \(clients) blocked", load: loadConnections, repeats: samples,
                                            note: "\(timeoutMs) ms timeout"))
                    log(results.last!)
                }
            }
            if parts.contains("pubsub") {
                let samples = try repeated { try Scenarios.publishLatency(t, iterations: iterations) }
                results.append(.latency("pubsub PUBLISH->message", load: loadConnections, repeats: samples))
                log(results.last!)
                let rates = try (0..<repeats).map { _ in try Scenarios.fanOut(t, subscribers: subscribers, messages: messages / 10) }
                var m = Measurement(name: "pubsub fan-out 1 publisher -> \(subscribers) subscribers", load: loadConnections,
                                    unit: "msg/s", samples: subscribers * messages / 10 * repeats)
                m.throughput = rates.sorted()[rates.count / 2]
                m.repeats = rates
                results.append(m)
                log(m)
            }
            if parts.contains("handoff") {
                var rates: [Double] = []
                var lost = 0, duplicated = 0
                for _ in 0..<repeats {
                    let h = try Scenarios.queueHandoff(t, producers: producers, consumers: consumers, queues: queues, messages: messages)
                    rates.append(h.messagesPerSecond)
                    lost += h.lost
                    duplicated += h.duplicated
                }
                var m = Measurement(name: "queue hand-off \(producers)P/\(consumers)C/\(queues)Q LPUSH->BRPOP", load: loadConnections,
                                    unit: "msg/s", samples: messages * repeats)
                m.throughput = rates.sorted()[rates.count / 2]
                m.repeats = rates
                m.note = lost == 0 && duplicated == 0 ? "exactly once" : "LOST \(lost), DUPLICATED \(duplicated)"
                results.append(m)
                log(m)
            }
        }
        let report = RunReport(label: label, host: host, port: port, shards: t.shards,
                               date: ISO8601DateFormatter().string(from: Date()), measurements: results)
        print(Render.table(report))
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: json))
        }
    }

    private func log(_ m: Measurement) {
        let figure = m.unit == "us" ? "p50 \(Render.format(m.p50)) us, p99 \(Render.format(m.p99)) us" : "\(Render.format(m.throughput)) \(m.unit)"
        FileHandle.standardError.write("\(label): \(m.name), load \(m.load): \(figure)\n".data(using: .utf8)!)
    }
}

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Compare the JSON results of several runs.")

    @Argument(help: "JSON files written by `run`.") var files: [String]
    @Option(help: "Label the ratios are taken against.") var baseline: String?
    @Option(help: "Write the comparison table here (Markdown).") var markdown: String?
    @Option(help: "Write the latency-percentile chart here (SVG).") var svg: String?

    func run() throws {
        let runs = try files.map { try JSONDecoder().decode(RunReport.self, from: Data(contentsOf: URL(fileURLWithPath: $0))) }
        let table = Render.comparison(runs, baseline: baseline)
        print(table)
        if let markdown { try table.write(toFile: markdown, atomically: true, encoding: .utf8) }
        if let svg {
            let loads = Set(runs.flatMap { $0.measurements.map(\.load) }).sorted()
            var panels: [String] = []
            for load in loads {
                panels += ["wake LPUSH->BLPOP same-shard", "wake LPUSH->BLPOP cross-shard", "unblock CLIENT UNBLOCK TIMEOUT",
                           "timeout lateness, 1000 blocked"].map { "\($0) | load \(load)" }
            }
            try Render.svg(runs, panels: panels).write(toFile: svg, atomically: true, encoding: .utf8)
        }
    }
}
