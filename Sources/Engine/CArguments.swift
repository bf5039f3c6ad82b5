import RESP

/// Calls `body` with C arrays of pointers and lengths for `items`, all pointing into one
/// buffer that stays valid for the call: the argv form the C hosts (Lua, JavaScript) take.
package func withCArguments<T>(_ items: some Sequence<Bytes>,
                       _ body: (UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int>?) -> T) -> T {
    var bytes: [UInt8] = []
    var ranges: [Range<Int>] = []
    for item in items {
        let start = bytes.count
        item.withUnsafeBytes { bytes.append(contentsOf: $0) }
        ranges.append(start..<bytes.count)
    }
    return bytes.withUnsafeBufferPointer { buf in
        let base = UnsafeRawPointer(buf.baseAddress ?? UnsafePointer(bitPattern: 1)!).assumingMemoryBound(to: CChar.self)
        let pointers: [UnsafePointer<CChar>?] = ranges.map { base + $0.lowerBound }
        let lengths = ranges.map(\.count)
        return pointers.withUnsafeBufferPointer { p in lengths.withUnsafeBufferPointer { body(p.baseAddress, $0.baseAddress) } }
    }
}
