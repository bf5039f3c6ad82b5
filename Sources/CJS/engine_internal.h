// Private to libBerthJS: the engine's state and the helpers its files share.
#pragma once

// SpiderMonkey's debug-build checks are keyed on DEBUG, which SwiftPM defines in debug
// builds; js-config.h refuses that combination.
#undef DEBUG

#include <jsapi.h>
#include <jsfriendapi.h>
#include <js/Array.h>
#include <js/ArrayBuffer.h>
#include <js/BigInt.h>
#include <js/CompilationAndEvaluation.h>
#include <js/Conversions.h>
#include <js/Exception.h>
#include <js/Initialization.h>
#include <js/JSON.h>
#include <js/MapAndSet.h>
#include <js/Promise.h>
#include <js/PropertyAndElement.h>
#include <js/SavedFrameAPI.h>
#include <js/SourceText.h>
#include <js/String.h>

#include <malloc.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "berth_js_api.h"
#include "berth_js_prelude.h"
struct BerthJSEngine {
    JSContext *cx = nullptr;
    JS::PersistentRootedObject *global = nullptr;
    JS::PersistentRootedObject *hooks = nullptr;  // the prelude's {redis, begin, end, invoke, settle}
    BerthJSHost host{};
    std::atomic<size_t> memoryLimit{0};  // the process malloc total that stops a script
    std::atomic<int> stopReason{0};  // asked by interrupt(): 1 timeout
    int terminated = 0;              // why the last entry into JS stopped early
    std::unordered_map<uint64_t, int> protocols;  // each unfinished run's reply protocol
};


namespace berthjs {

using Buffer = std::string;

inline BerthJSEngine *engineOf(JSContext *cx) { return static_cast<BerthJSEngine *>(JS_GetContextPrivate(cx)); }

// values.cpp: strings, and RESP <-> JavaScript.
bool utf8(JSContext *cx, JS::HandleString s, std::string &out);
bool argumentBytes(JSContext *cx, JS::HandleValue v, std::string &out);
JSString *newString(JSContext *cx, const char *p, size_t n);
JSObject *newArrayBuffer(JSContext *cx, const char *p, size_t n);
bool throwMessage(JSContext *cx, const std::string &message);
bool makeError(JSContext *cx, const std::string &message, JS::MutableHandleValue out);

struct Reader {
    const char *p, *end;
    std::string line();
};
bool readReply(JSContext *cx, Reader &r, bool raw, JS::MutableHandleValue out, std::string *error, int depth = 0);
void appendError(Buffer &b, std::string message);
bool errorMessage(JSContext *cx, JS::HandleValue v, std::string &out);
bool writeValue(JSContext *cx, JS::HandleValue v, int resp, Buffer &b, int depth = 0);

// natives.cpp: the functions the prelude calls.
bool defineNatives(JSContext *cx, JS::HandleObject natives);

}  // namespace berthjs
