import BerthClient
import Foundation

/// Starts the real berth-server binary on a free port for one test and stops it after.
final class ServerProcess {
    let port: Int
    private let process = Process()

    static var binary: String {
        if let b = ProcessInfo.processInfo.environment["BERTH_SERVER"] { return b }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/berth-server").path
    }

    init(shards: Int, io: String = "auto", extra: [String] = []) throws {
        port = ServerProcess.freePort()
        process.executableURL = URL(fileURLWithPath: ServerProcess.binary)
        process.arguments = ["--port", String(port), "--shards", String(shards), "--io", io, "--loglevel", "warning"] + extra
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        for _ in 0..<500 {
            if let c = try? RESPClient(port: port), (try? c.call("PING")) == .simple("PONG") { return }
            usleep(10_000)
        }
        throw RESPClient.Failure(description: "server did not start on port \(port)")
    }

    func client() throws -> RESPClient { try RESPClient(port: port) }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }

    deinit { stop() }

    var exitStatus: Int32 { process.terminationStatus }

    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}
