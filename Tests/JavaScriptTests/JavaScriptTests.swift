import RESP
import XCTest
@testable import JavaScript

final class JavaScriptTests: XCTestCase {
    /// The prologue names the library and the engine; the line becomes a comment so the
    /// code's line numbers stay.
    func testPrologue() throws {
        let code = Bytes("#!js api_version=1.0 name=lib\nredis.registerFunction('f', () => 1);")
        guard case .success(let p) = TFunctionCommands.prologue(code) else { return XCTFail("refused a good prologue") }
        XCTAssertEqual(p.name, "lib")
        XCTAssertEqual(p.body.string, "//js api_version=1.0 name=lib\nredis.registerFunction('f', () => 1);")
        let refused: [(String, String)] = [
            ("var x", "ERR the library code must start with '#!js api_version=1.0 name=<library name>'"),
            ("#!lua name=x", "ERR unknown engine 'lua': only 'js' is supported"),
            ("#!js api_version=1.1 name=x", "ERR unsupported api version '1.1': Berth supports 1.0"),
            ("#!js name=x", "ERR the library metadata has no api_version"),
            ("#!js api_version=1.0 name=a-b", "ERR the library metadata needs name=<library name> (letters, digits and underscores)"),
            ("#!js api_version=1.0 name=x color=red", "ERR unknown library metadata 'color'"),
            ("#!js api_version=1.0 name", "ERR bad library metadata 'name'"),
        ]
        for (source, message) in refused {
            guard case .failure(let e) = TFunctionCommands.prologue(Bytes(source)) else { XCTFail("accepted \(source)"); continue }
            XCTAssertEqual(e.message, message)
        }
    }
}
