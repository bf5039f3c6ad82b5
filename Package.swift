// swift-tools-version:6.0
// The targets below are Berth's layers, lowest first (docs/architecture.md):
// RESP -> Keyspace -> Persistence -> Commands -> Engine -> {Modules, Scripting, JavaScript} -> berth-server,
// with Uring over CUring beside Engine, and the C halves (CModuleHost, CLua, CJSHost) under
// the engine that uses each.
import PackageDescription

// Release builds drop Swift's dynamic exclusivity checks on class properties: they showed
// up as ~8% of server CPU on the pipelined hot path (swift_beginAccess). Debug builds and
// the tests keep them.
let releaseSettings: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "Berth",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "berth-server", targets: ["BerthServer"]),
        .library(name: "BerthClient", targets: ["BerthClient"]),
        .executable(name: "berth-bench", targets: ["BerthBench"]),
        // The JavaScript engine, loaded by the server at run time (see CJSHost).
        .library(name: "BerthJS", type: .dynamic, targets: ["CJS"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
    ],
    targets: [
        // liburing from Debian's liburing-dev, linked statically so the binary needs no liburing.so.
        .target(
            name: "CUring",
            path: "CUring",
            linkerSettings: [.linkedLibrary(":liburing.a")]
        ),
        // The C side of the module API: GetApi by name and the variadic calls (Call, Log...).
        .target(name: "CModuleHost"),
        // Lua 5.1 from Debian's liblua5.1-0-dev (with lua-cjson-dev and lua-bitop-dev),
        // linked statically, with the EVAL script
        // environment built in C (Lua's errors longjmp, which must not cross Swift frames).
        .target(name: "CLua", linkerSettings: [
            .linkedLibrary(":liblua5.1-cjson.a"), .linkedLibrary(":liblua5.1-bitop.a"),
            .linkedLibrary(":liblua5.1.a"), .linkedLibrary("m"),
        ]),
        // The C boundary to the JavaScript engine (header only): Engine dlopens libBerthJS.so
        // and finds this table in it, so berth-server itself never links SpiderMonkey.
        .target(name: "CJSHost"),
        // SpiderMonkey 102 from Debian's libmozjs-102-dev behind a C++ shim: libBerthJS.so.
        .target(
            name: "CJS",
            dependencies: ["CJSHost"],
            cxxSettings: [.unsafeFlags(["-isystem", "/usr/include/mozjs-102"])],
            linkerSettings: [.linkedLibrary("mozjs-102")]
        ),
        // Compiler builtins Swift lacks: cache prefetch for the key table's batched lookups, the
        // CPU's cycle counter for timing commands.
        .target(name: "CIntrinsics"),
        // The allocator (jemalloc) and the count of what it hands out (used_memory,
        // maxmemory): see allocator.c.
        .target(name: "CAllocator", linkerSettings: [.linkedLibrary("jemalloc")]),
        // INCRBYFLOAT's long double arithmetic and printing, which Swift cannot express portably.
        .target(name: "CLongDouble"),
        .target(name: "RESP", swiftSettings: releaseSettings),
        .target(
            name: "Keyspace",
            dependencies: [
                "RESP", "CIntrinsics",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
            ],
            swiftSettings: releaseSettings
        ),
        // Redis's file formats: RDB snapshots and DUMP payloads, read and written.
        .target(
            name: "Persistence",
            dependencies: [
                "RESP", "Keyspace",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: releaseSettings
        ),
        .target(name: "Commands", dependencies: ["RESP", "Keyspace", "Persistence", "CLongDouble"], swiftSettings: releaseSettings),
        .target(name: "Uring", dependencies: ["CUring"]),
        .target(
            name: "Engine",
            dependencies: [
                "RESP", "Keyspace", "Persistence", "Commands", "Uring", "CUring", "CIntrinsics", "CAllocator",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: releaseSettings
        ),
        // The engines that stand on Engine with package access and reach it only through
        // Engine/Extensions.swift: the module API, Lua scripting, JavaScript.
        .target(
            name: "Modules",
            dependencies: [
                "Engine", "RESP", "Keyspace", "Persistence", "Commands", "CModuleHost",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: releaseSettings
        ),
        .target(name: "Scripting", dependencies: ["Engine", "RESP", "Keyspace", "Persistence", "Commands", "CLua"], swiftSettings: releaseSettings),
        .target(
            name: "JavaScript",
            dependencies: ["Engine", "RESP", "Keyspace", "Commands", "CJSHost", "CUring", "CAllocator"],
            swiftSettings: releaseSettings
        ),
        // Modules written in Swift against the public module API, built in.
        .target(name: "SwiftModuleExamples", dependencies: ["Modules", "RESP"], swiftSettings: releaseSettings),
        .executableTarget(
            name: "BerthServer",
            dependencies: [
                "Engine", "Modules", "Scripting", "JavaScript", "SwiftModuleExamples",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "BerthClient", dependencies: ["RESP"]),
        // Blocking/unblocking latency and queue throughput against any RESP server.
        .executableTarget(
            name: "BerthBench",
            dependencies: [
                "BerthClient", "RESP", "Keyspace",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "Benchmarks/BerthBench"
        ),
        .testTarget(name: "RESPTests", dependencies: ["RESP"]),
        .testTarget(name: "KeyspaceTests", dependencies: ["Keyspace", "RESP"]),
        .testTarget(name: "PersistenceTests", dependencies: ["Persistence", "Keyspace", "RESP", "BerthClient"]),
        .testTarget(name: "CommandsTests", dependencies: ["Commands", "Keyspace", "RESP"]),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "Uring", "Commands", "Keyspace", "RESP", "CAllocator"]),
        .testTarget(name: "ModulesTests", dependencies: ["Modules", "RESP"]),
        .testTarget(name: "JavaScriptTests", dependencies: ["JavaScript", "RESP"]),
        .testTarget(name: "IntegrationTests", dependencies: ["BerthClient", "RESP"]),
    ],
    cxxLanguageStandard: .cxx17
)
