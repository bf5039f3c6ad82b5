#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A growable byte buffer with a stable address between mutations, so the kernel may read
/// from it (send) or write into it (recv) while an operation is in flight.
///
/// Invariant: `0 <= readerIndex <= writerIndex <= capacity`; the readable bytes are
/// `[readerIndex, writerIndex)`. The storage moves only in `reserve`, `compact` and
/// `clear`, which callers must not invoke while an I/O operation uses the buffer. While
/// `receiving` is set, the kernel owns the bytes from `writerIndex` on: `consume` then
/// leaves the indices where they are instead of rewinding an emptied buffer, so the
/// pending receive's bytes land right after the ones already read.
///
/// The storage's address never leaves this type but through the calls that lend it for
/// one I/O operation: `withWritableBytes` (a synchronous recv), `beginReceive` /
/// `endReceive` (an asynchronous one, whose bytes the kernel owns meanwhile) and
/// `readableBytes` (a send).
public final class IOBuffer {
    private(set) var base: UnsafeMutablePointer<UInt8>
    public private(set) var capacity: Int
    public private(set) var readerIndex = 0
    public private(set) var writerIndex = 0
    /// A receive into `[writerIndex, capacity)` is in flight (`beginReceive`).
    public private(set) var receiving = false

    public init(capacity: Int = 16 * 1024) {
        self.capacity = max(capacity, 64)
        base = UnsafeMutablePointer<UInt8>.allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    @inlinable public var readableCount: Int { writerIndex - readerIndex }
    @inlinable public var writableCount: Int { capacity - writerIndex }
    @inlinable public var isEmpty: Bool { writerIndex == readerIndex }

    var readPointer: UnsafeMutablePointer<UInt8> { base + readerIndex }
    var writePointer: UnsafeMutablePointer<UInt8> { base + writerIndex }

    /// Lends the writable bytes to `body` (a recv into them), which returns how many it
    /// filled (or a negative count for none); those become readable.
    @inline(__always)
    public func withWritableBytes(_ body: (UnsafeMutableRawBufferPointer) -> Int) -> Int {
        let n = body(UnsafeMutableRawBufferPointer(start: base + writerIndex, count: capacity - writerIndex))
        if n > 0 { writerIndex += n }
        return n
    }

    /// Lends the writable bytes to an asynchronous receive (an io_uring recv): until
    /// `endReceive` they belong to the kernel, and the storage does not move.
    public func beginReceive(_ submit: (UnsafeMutableRawBufferPointer) -> Void) {
        precondition(!receiving, "IOBuffer: a receive is already in flight")
        receiving = true
        submit(UnsafeMutableRawBufferPointer(start: base + writerIndex, count: capacity - writerIndex))
    }

    /// The asynchronous receive completed with `count` bytes (none when not positive).
    public func endReceive(_ count: Int) {
        receiving = false
        if count > 0 { writerIndex += count }
    }

    public var readableBytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base + readerIndex, count: writerIndex - readerIndex)
    }

    /// Makes room for at least `n` more bytes after `writerIndex`.
    @inline(__always)
    public func reserve(_ n: Int) {
        if capacity - writerIndex < n { grow(n) }
    }

    private func grow(_ n: Int) {
        precondition(!receiving, "IOBuffer moved under a pending receive")
        let live = writerIndex - readerIndex
        // Sliding the live bytes to the front is enough when most of the buffer is consumed.
        if readerIndex > 0 && capacity - live >= n && live <= capacity / 2 {
            compact()
            return
        }
        var newCapacity = capacity
        while newCapacity - live < n { newCapacity *= 2 }
        let fresh = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        if live > 0 { fresh.update(from: base + readerIndex, count: live) }
        base.deallocate()
        base = fresh
        capacity = newCapacity
        readerIndex = 0
        writerIndex = live
    }

    /// Moves the unread bytes to the front of the storage.
    public func compact() {
        precondition(!receiving, "IOBuffer moved under a pending receive")
        let live = writerIndex - readerIndex
        if readerIndex > 0 {
            if live > 0 { base.update(from: base + readerIndex, count: live) }
            readerIndex = 0
            writerIndex = live
        }
    }

    /// Forgets all bytes; shrinks storage that a burst made large.
    public func clear(shrinkAbove limit: Int = 1 << 20, to small: Int = 16 * 1024) {
        readerIndex = 0
        writerIndex = 0
        if capacity > limit {
            base.deallocate()
            capacity = small
            base = UnsafeMutablePointer<UInt8>.allocate(capacity: small)
        }
    }

    /// Gives back storage an empty buffer no longer needs: reallocates it at `small` bytes
    /// when it holds nothing, no receive is in flight, and it is more than twice that.
    public func shrinkIfEmpty(to small: Int) {
        let small = max(small, 64)
        guard readerIndex == writerIndex, !receiving, capacity > 2 * small else { return }
        base.deallocate()
        capacity = small
        base = UnsafeMutablePointer<UInt8>.allocate(capacity: small)
        readerIndex = 0
        writerIndex = 0
    }

    @inline(__always)
    public func consume(_ n: Int) {
        readerIndex += n
        if readerIndex == writerIndex && !receiving { readerIndex = 0; writerIndex = 0 }
    }

    @inline(__always)
    public func append(_ byte: UInt8) {
        reserve(1)
        base[writerIndex] = byte
        writerIndex += 1
    }

    @inline(__always)
    public func append(_ raw: UnsafeRawBufferPointer) {
        let n = raw.count
        guard n > 0 else { return }
        reserve(n)
        UnsafeMutableRawPointer(base + writerIndex).copyMemory(from: raw.baseAddress!, byteCount: n)
        writerIndex += n
    }

    @inline(__always)
    public func append(_ s: StaticString) {
        append(UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    @inline(__always)
    public func append(_ b: Bytes) {
        b.withUnsafeBytes { append($0) }
    }

    public func append(_ s: String) {
        var s = s
        s.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    /// Appends the decimal form of `v` without allocating.
    @inline(__always)
    public func appendDecimal(_ v: Int) {
        reserve(20)
        var tmp: (UInt64, UInt64, UInt64) = (0, 0, 0)
        let len: Int = withUnsafeMutableBytes(of: &tmp) { raw in
            let i = writeDecimal(v, into: raw)
            let len = 24 - i
            (base + writerIndex).update(from: raw.baseAddress!.advanced(by: i).assumingMemoryBound(to: UInt8.self), count: len)
            return len
        }
        writerIndex += len
    }

    /// A copy of the readable bytes (tests and diagnostics).
    public var readableArray: [UInt8] { Array(readableBytes) }
}
