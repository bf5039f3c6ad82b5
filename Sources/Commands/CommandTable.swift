import Keyspace
import RESP

/// The table of every command the server knows, by lowercase name. Data commands come
/// from this target; the engine adds its connection and server commands at start-up.
public struct CommandTable: Sendable {
    public private(set) var specs: [Bytes: CommandSpec] = [:]
    /// Command names by `CommandSpec.id`.
    public private(set) var names: [String] = []

    public init(extra: [CommandSpec] = []) {
        for group in [StringCommands.specs, BitmapCommands.specs, BitfieldCommand.specs, [LCSCommand.spec], [ObjectCommand.spec], SortCommand.specs, KeyCommands.specs, ListCommands.specs, HashCommands.specs,
                      SetCommands.specs, SortedSetCommands.specs, SortedSetCommands.algebraSpecs, BlockingCommands.specs,
                      StreamCommands.specs, StreamGroupCommands.specs, [StreamInfoCommand.spec], DumpRestore.specs, extra] {
            for spec in group { specs[Bytes(spec.name)] = spec }
        }
        for (i, name) in specs.keys.sorted().enumerated() {
            specs[name]!.id = i
            names.append(specs[name]!.name)
        }
    }

    /// Finds a command by its name as the client sent it, in any letter case.
    @inline(__always)
    public func lookup(_ name: Bytes) -> CommandSpec? {
        specs[name.lowercasedASCII()]
    }

    public var count: Int { specs.count }
}
