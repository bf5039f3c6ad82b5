import Engine
import Commands
import RESP

/// JavaScript as the core sees it (Extensions.swift): the loaded libraries, the watchdog
/// that stops a runaway function, and the TFUNCTION/TFCALL commands.
package final class JavaScriptHost: JavaScriptExtension {
    /// Libraries loaded by TFUNCTION LOAD (TFunctionCommands.swift).
    let libraries = JSLibraries()
    /// Started with the first library (JSWatchdog.swift).
    let watchdog = JSWatchdog()

    package init() {}

    package var commands: [(CommandSpec, EngineHandler)] { TFunctionCommands.table }

    package func closeAll() -> Bool { libraries.closeAll() }

    package var librariesAsLoadArguments: [[Bytes]] {
        libraries.all.map { lib in lib.config.map { [Bytes("CONFIG"), Bytes($0), lib.code] } ?? [lib.code] }
    }

    package func restoreLibrary(_ arguments: [Bytes], server: Server) -> String? {
        let out = IOBuffer(capacity: 128)
        let w = ReplyWriter(buffer: out, protocolVersion: 2, countsErrors: false)
        guard TFunctionCommands.load(server, arguments, w) else { return nil }
        return String(decoding: out.readableArray.dropFirst().prefix { $0 != 13 }, as: UTF8.self)
    }
}

extension Server {
    /// The JavaScript extension main handed over: always this one.
    var javascriptHost: JavaScriptHost { unsafeDowncast(extensions.javascript, to: JavaScriptHost.self) }
    var javascript: JSLibraries { javascriptHost.libraries }
    var jsWatchdog: JSWatchdog { javascriptHost.watchdog }
}
