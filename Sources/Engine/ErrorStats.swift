import RESP
import Synchronization

/// INFO errorstats: how many error replies the server wrote, by error code (the reply's
/// first word: ERR, WRONGTYPE, BUSY, NOSCRIPT, a script's own code...), as Redis counts
/// them: every error written (`ReplyWriter.errorObserver`), including each failed command
/// inside EXEC, a command a script called, and a script's error result, whether or not
/// CLIENT REPLY lets the client see it. (Redis does not count again an error that a
/// script passes on from redis.call; Berth does.)
///
/// Errors are rare next to commands, so one server-wide table under a mutex is simpler
/// than per-shard tables that would follow migrating clients. Like Redis, it tracks at
/// most 128 distinct codes; later codes are not counted.
///
/// INFO stats `total_error_replies` is the count of the same errors, codes past the
/// table's limit included, as Redis counts both where an error reply is written.
///
/// Invariants: `counts` has at most `maxCodes` entries; every access holds the mutex.
/// `total` is bumped inside the same critical section, so a reset clears both at once.
package final class ErrorStats: Sendable {
    static let maxCodes = 128
    private let counts = Mutex<[String: Int]>([:])
    private let totalCount = Atomic<Int>(0)

    /// Counts a reply written as raw bytes (a script's result) when it is an error.
    package func countReply(_ reply: [UInt8]) {
        guard reply.first == UInt8(ascii: "-") else { return }
        let line = reply.dropFirst().prefix { $0 != 32 && $0 != 13 }
        count(String(decoding: line, as: UTF8.self))
    }

    /// Counts one error reply whose message is `message` ("CODE text").
    func count(message: String) {
        count(String(message.prefix { $0 != " " }))
    }

    /// The first word is the code, whatever it is, as Redis counts it; an empty one is ERR.
    private func count(_ word: String) {
        let code = word.isEmpty ? "ERR" : word
        counts.withLock { c in
            if c[code] != nil || c.count < Self.maxCodes { c[code, default: 0] += 1 }
            totalCount.add(1, ordering: .relaxed)
        }
    }

    /// The errorstat_<code> fields, by code.
    var fields: [(String, String)] {
        counts.withLock { $0 }.sorted { $0.key < $1.key }.map { ("errorstat_\($0.key)", "count=\($0.value)") }
    }

    /// Every error reply counted since start or the last reset.
    var total: Int { totalCount.load(ordering: .relaxed) }

    func reset() {
        counts.withLock {
            $0.removeAll()
            totalCount.store(0, ordering: .relaxed)
        }
    }
}
