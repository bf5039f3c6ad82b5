import Logging
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// swift-log handler writing Redis-style lines (`pid:M 23 Nov 2026 01:02:03.456 * text`)
/// to stderr (journald picks them up) or to a log file.
public struct BerthLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let fd: FileDescriptor

    /// Logs to `logfile` (appended to, created if need be), or to stderr when it is empty;
    /// throws the reason the file could not be opened.
    public init(level: Logger.Level, logfile: String) throws {
        logLevel = level
        fd = logfile.isEmpty ? .standardError
            : try FileDescriptor.open(logfile, .writeOnly, options: [.create, .append, .closeOnExec],
                                      permissions: [.ownerReadWrite, .groupRead, .otherRead])
    }

    /// Maps Redis loglevel names onto swift-log levels.
    public static func level(_ name: String) -> Logger.Level {
        switch name {
        case "debug": return .debug
        case "verbose": return .info
        case "warning": return .warning
        case "nothing": return .critical
        default: return .notice
        }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        emit(level: event.level, message: event.message)
    }

    public func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?,
                    source: String, file: String, function: String, line: UInt) {
        emit(level: level, message: message)
    }

    private func emit(level: Logger.Level, message: Logger.Message) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = ts.tv_sec
        var parts = tm()
        localtime_r(&t, &parts)
        var buf = [CChar](repeating: 0, count: 64)
        let n = strftime(&buf, 64, "%d %b %Y %H:%M:%S", &parts)
        let ms = ts.tv_nsec / 1_000_000
        let msText = ms < 10 ? "00\(ms)" : ms < 100 ? "0\(ms)" : "\(ms)"
        let mark: String
        switch level {
        case .trace, .debug: mark = "."
        case .info: mark = "-"
        case .notice: mark = "*"
        default: mark = "#"
        }
        let text = "\(getpid()):M \(String(decoding: buf[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)).\(msText) \(mark) \(message)\n"
        _ = try? fd.writeAll(text.utf8)
    }
}
