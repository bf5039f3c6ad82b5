import Engine
import CAllocator
import CJSHost
import RESP

/// The callbacks libBerthJS.so makes into the server, each on the library's thread while
/// its engine runs JavaScript; `context` is the library, unretained (the library outlives
/// its engine).
enum JSHost {
    static func table(for library: JSLibrary) -> BerthJSHost {
        var host = BerthJSHost()
        host.context = Unmanaged.passUnretained(library).toOpaque()
        host.allocated_bytes = { berth_allocated_bytes() }
        host.call = { context, id, argv, lengths, argc, out in
            let library = JSHost.library(context)
            let reply: [UInt8]
            if let run = library.run(id) {
                reply = library.call(run, JSHost.words(argv, lengths, argc))
            } else {
                reply = Array("-ERR the function already finished\r\n".utf8)
            }
            reply.withUnsafeBytes { library.api.c.buffer_append(out, $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count) }
        }
        host.call_async = { context, id, promise, raw, argv, lengths, argc in
            let library = JSHost.library(context)
            guard let run = library.run(id) else { return }
            library.callAsync(run, promise: promise, raw: raw != 0, JSHost.words(argv, lengths, argc))
        }
        host.enter = { context, id, out in
            let library = JSHost.library(context)
            guard let run = library.run(id) else { return -1 }
            if let reason = library.enter(run) {
                Array(reason.utf8).withUnsafeBytes { library.api.c.buffer_append(out, $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count) }
                return -1
            }
            return 0
        }
        host.leave = { context, id in
            let library = JSHost.library(context)
            if let run = library.run(id) { library.leave(run) }
        }
        host.block_allowed = { context, id in
            JSHost.library(context).run(id)?.blockAllowed == true ? 1 : 0
        }
        host.finish = { context, id, reply, length in
            let library = JSHost.library(context)
            guard let run = library.run(id) else { return }
            library.finish(run, Array(UnsafeRawBufferPointer(start: reply, count: length)))
        }
        host.log = { context, level, message, length in
            let text = String(decoding: UnsafeRawBufferPointer(start: message, count: length), as: UTF8.self)
            JSHost.library(context).log(level, text)
        }
        return host
    }

    private static func library(_ context: UnsafeMutableRawPointer?) -> JSLibrary {
        Unmanaged<JSLibrary>.fromOpaque(context!).takeUnretainedValue()
    }

    private static func words(_ argv: UnsafePointer<UnsafePointer<CChar>?>?, _ lengths: UnsafePointer<Int>?, _ argc: Int32) -> [Bytes] {
        (0..<Int(argc)).map { Bytes(UnsafeRawBufferPointer(start: argv![$0], count: lengths![$0])) }
    }
}
