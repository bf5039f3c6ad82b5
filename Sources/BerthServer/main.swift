import Engine
import Logging
import JavaScript
import Modules
import Scripting
import SwiftModuleExamples
#if canImport(Glibc)
import Glibc
#endif

// berth-server [config-file] [--option value ...] — the redis-server command line:
// options given after the file override it, and every config-file key works as --key.

let usage = """
Usage: berth-server [/path/to/berth.conf] [options]
       berth-server --version
       berth-server --help
       berth-server --check-config [/path/to/berth.conf] [options]

Options are the configuration keys, e.g.:
  --port 6379 --bind 127.0.0.1 --shards 4 --io uring|epoll|auto
  --maxclients 10000 --requirepass secret --timeout 0 --tcp-keepalive 300
  --loglevel notice --logfile "" --databases 16
  --proto-max-bulk-len 512mb --client-query-buffer-limit 1gb

"""

func fail(_ message: String) -> Never {
    var text = Array((message + "\n").utf8)
    _ = text.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    exit(1)
}

var args = Array(CommandLine.arguments.dropFirst())
var checkOnly = false
if args.first == "--version" || args.first == "-v" {
    print("Berth server v=\(Server.version) redis-compat=\(Server.redisCompatibleVersion)")
    exit(0)
}
if args.first == "--help" || args.first == "-h" {
    print(usage)
    exit(0)
}
if args.first == "--check-config" {
    checkOnly = true
    args.removeFirst()
}

// Swift modules built into this executable, loadable as `swift:<name>`.
SwiftModules.register(SwiftDemoModule.self)

let config = ServerConfig()
var configFile: String? = nil
if let first = args.first, !first.hasPrefix("--") {
    configFile = first
    args.removeFirst()
    guard let fp = fopen(first, "r") else { fail("Fatal error, can't open config file '\(first)': \(String(cString: strerror(errno)))") }
    var contents = [UInt8]()
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&chunk, 1, chunk.count, fp)
        if n <= 0 { break }
        contents.append(contentsOf: chunk[0..<n])
    }
    fclose(fp)
    do {
        try config.load(file: String(decoding: contents, as: UTF8.self))
    } catch {
        fail("\n\(error)")
    }
}

var i = 0
while i < args.count {
    let a = args[i]
    guard a.hasPrefix("--") else { fail("Invalid argument '\(a)': options start with --\n\(usage)") }
    let name = String(a.dropFirst(2))
    var values: [String] = []
    i += 1
    while i < args.count && !args[i].hasPrefix("--") { values.append(args[i]); i += 1 }
    do {
        try config.set(name, values.joined(separator: " "), startup: true)
    } catch {
        fail("Invalid option --\(name) \(values.joined(separator: " ")): \(error)")
    }
}

if checkOnly {
    print("Configuration OK")
    exit(0)
}

let logHandler: BerthLogHandler
do {
    logHandler = try BerthLogHandler(level: BerthLogHandler.level(config.get("loglevel")), logfile: config.get("logfile"))
} catch {
    fail("Can't open the log file: \(error)")
}
LoggingSystem.bootstrap { _ in logHandler }
let server = Server(config: config, configFile: configFile, logger: Logger(label: "berth"),
                    extensions: Extensions(scripting: LuaScripting(), modules: ModuleHost(), javascript: JavaScriptHost()))
exit(server.run())
