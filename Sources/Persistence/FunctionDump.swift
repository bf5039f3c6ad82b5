import RESP

/// FUNCTION DUMP's payload, as Redis makes it: each library as the RDB file has it (the
/// FUNCTION2 opcode and the library's source), then the RDB version and a CRC64, like a
/// DUMP payload. Redis's and Valkey's FUNCTION RESTORE read Berth's, and Berth theirs.
public enum FunctionDump {
    public static func payload(_ sources: [Bytes]) -> [UInt8] {
        var out = RDBOutput(compress: false)
        for source in sources {
            out.byte(RDBOpcode.function2)
            out.string(source)
        }
        out.dumpFooter()
        return out.bytes
    }

    /// The libraries' sources; throws "DUMP payload version or checksum are wrong" for a
    /// bad footer, and RDBError for anything else that is not a library.
    public static func sources(_ payload: Bytes) throws -> [Bytes] {
        try payload.withUnsafeBytes { raw in
            let body = try RDBReader.checkDumpFooter(raw)
            var input = RDBInput(body)
            var sources: [Bytes] = []
            while !input.isAtEnd {
                let opcode = try input.byte()
                if opcode == RDBOpcode.functionPreGA { throw input.error("Pre-GA function format not supported") }
                guard opcode == RDBOpcode.function2 else { throw input.error("given type is not a function") }
                sources.append(try input.string())
            }
            return sources
        }
    }
}
