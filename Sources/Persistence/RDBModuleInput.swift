import Keyspace
import RESP

/// What a module data type's rdb_load reads its value from: the module API's Load*
/// functions (LoadUnsigned, LoadSigned, LoadString, LoadDouble, LoadFloat) call these.
///
/// Since RDB 8 (the MODULE_2 value type) every item a module saved is preceded by an
/// opcode saying its kind (RDBModuleOpcode), and the value ends with the EOF opcode; each
/// load checks the opcode, so a module reading something other than what was saved fails
/// cleanly instead of misreading the file. After the first failure every further load
/// fails too and `error` keeps the first one: a C module that ignores a failed load (the C
/// API reports it only through the IO context) still cannot make the reader go on.
///
/// The input reads straight from the file's buffer and is valid only while the module's
/// load callback runs; a module that keeps it and reads later gets an error.
public final class RDBModuleInput {
    var input: RDBInput
    /// The key being loaded (GetKeyNameFromIO); nil for a DUMP payload.
    public let key: Bytes?
    /// Its database (GetDbIdFromIO); -1 when not known.
    public let db: Int
    /// The data type's 9-character name, for messages.
    public let typeName: String
    /// The first load that failed.
    public private(set) var error: RDBError?
    private var closed = false

    init(_ input: RDBInput, key: Bytes?, db: Int, typeName: String) {
        self.input = input
        self.key = key
        self.db = db
        self.typeName = typeName
    }

    public func loadUnsigned() throws -> UInt64 {
        try load(RDBModuleOpcode.unsignedInt, "an unsigned integer") { try $0.length() }
    }

    /// Redis's SaveSigned stores the value's bits with the unsigned opcode, so both
    /// integer opcodes are accepted here.
    public func loadSigned() throws -> Int64 {
        try load(RDBModuleOpcode.unsignedInt, or: RDBModuleOpcode.signedInt, "a signed integer") {
            Int64(bitPattern: try $0.length())
        }
    }

    public func loadString() throws -> Bytes {
        try load(RDBModuleOpcode.string, "a string") { try $0.string() }
    }

    public func loadDouble() throws -> Double {
        try load(RDBModuleOpcode.double, "a double") { try $0.binaryDouble() }
    }

    public func loadFloat() throws -> Float {
        try load(RDBModuleOpcode.float, "a float") { try $0.binaryFloat() }
    }

    private func load<T>(
        _ opcode: UInt64, or alternative: UInt64? = nil, _ what: String, _ read: (inout RDBInput) throws -> T
    ) throws -> T {
        if let error { throw error }
        guard !closed else {
            throw RDBError("Module type '\(typeName)' read its value after loading ended", offset: input.origin + input.position)
        }
        do {
            let start = input.position
            let found = try input.length()
            guard found == opcode || found == alternative else {
                throw input.error("Module type '\(typeName)' loads \(what) where the file has item kind \(found)", at: start)
            }
            return try read(&input)
        } catch let e as RDBError {
            error = e
            throw e
        }
    }

    /// Ends the load: later reads fail.
    func close() { closed = true }
}

/// Module values (RDB type 7) and module auxiliary data (opcode MODULE_AUX).
///
/// A module type is identified by a 64-bit id: its 9-character name, 6 bits a character
/// from a 64-character set, in the high 54 bits, and the encoding version of the saved
/// data in the low 10.
enum ModuleValueDecoder {
    private static let nameCharacters = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    static func typeName(id: UInt64) -> String {
        var name = [UInt8](repeating: 0, count: 9)
        var bits = id >> 10
        for i in (0..<9).reversed() {
            name[i] = nameCharacters[Int(bits & 63)]
            bits >>= 6
        }
        return String(decoding: name, as: UTF8.self)
    }

    static func encodingVersion(id: UInt64) -> Int { Int(id & 1023) }

    /// A module value: the type's id, what the module saved, the EOF opcode.
    static func decode(_ input: inout RDBInput, context: ValueContext) throws -> Value? {
        let start = input.position
        let id = try input.length()
        let name = typeName(id: id)
        guard let type = context.target?.moduleType(id: id) else {
            throw input.error("The data has a value of module type '\(name)' but no loaded module provides that type", at: start)
        }
        let moduleInput = RDBModuleInput(input, key: context.key, db: context.db, typeName: name)
        let value: Value
        do {
            value = try type.load(moduleInput, encodingVersion: encodingVersion(id: id))
        } catch {
            if let e = moduleInput.error ?? (error as? RDBError) { throw e }
            throw RDBError("Module type '\(name)' could not load its value: \(error)", offset: moduleInput.input.origin + moduleInput.input.position)
        }
        moduleInput.close()
        if let e = moduleInput.error { throw e }
        input = moduleInput.input
        try expectEnd(&input, name)
        return value
    }

    /// Module auxiliary data (module-global state saved before or after the keys): its
    /// type id, when it was saved (an unsigned item), then what the type's aux_save wrote
    /// up to EOF, handed to its aux_load. As Redis, a file whose aux data no loaded module
    /// can read is refused rather than loaded without it.
    static func decodeAux(_ input: inout RDBInput, target: RDBLoadTarget) throws {
        let start = input.position
        let id = try input.length()
        let name = typeName(id: id)
        guard try input.length() == RDBModuleOpcode.unsignedInt else {
            throw input.error("Module type '\(name)' aux data does not start with its 'when'", at: start)
        }
        let when = try input.length()
        guard let type = target.moduleType(id: id) else {
            throw input.error("The RDB file contains AUX module data I can't load: no matching module '\(name)'", at: start)
        }
        let moduleInput = RDBModuleInput(input, key: nil, db: -1, typeName: name)
        do {
            try type.loadAux(moduleInput, encodingVersion: encodingVersion(id: id), when: Int(when))
        } catch {
            if let e = moduleInput.error { throw e }
            throw RDBError("Module type '\(name)' could not load its aux data: \((error as? RDBError)?.message ?? "\(error)")",
                           offset: moduleInput.input.origin + moduleInput.input.position)
        }
        moduleInput.close()
        if let e = moduleInput.error { throw e }
        input = moduleInput.input
        try expectEnd(&input, name)
    }

    private static func expectEnd(_ input: inout RDBInput, _ name: String) throws {
        let start = input.position
        guard try input.length() == RDBModuleOpcode.eof else {
            throw input.error("Module type '\(name)' value does not end where its module stopped reading", at: start)
        }
    }
}
