// libBerthJS: one SpiderMonkey context per library, behind the C table of
// berth_js_api.h. The `redis` object and the clients are written in JavaScript
// (prelude.cpp); this file holds the context's setup, the natives the prelude calls, the
// RESP <-> JavaScript conversions, and the interrupt callback that stops runaway code.
//
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

namespace {

using Buffer = std::string;

BerthJSEngine *engineOf(JSContext *cx) { return static_cast<BerthJSEngine *>(JS_GetContextPrivate(cx)); }

// ---- strings ----

// UTF-8 bytes of a JS string (lossless for any string).
bool utf8(JSContext *cx, JS::HandleString s, std::string &out) {
    size_t length = JS_GetStringLength(s);
    out.resize(length * 3 + 1);
    auto written = JS_EncodeStringToUTF8BufferPartial(cx, s, mozilla::Span<char>(out.data(), out.size()));
    if (!written) return false;
    out.resize(mozilla::Get<1>(*written));
    return true;
}

// The bytes a value stands for as a command argument: ArrayBuffers as they are, anything
// else as its string form in UTF-8.
bool argumentBytes(JSContext *cx, JS::HandleValue v, std::string &out) {
    if (v.isObject()) {
        JS::RootedObject o(cx, &v.toObject());
        if (JS::IsArrayBufferObject(o)) {
            size_t n = 0;
            bool shared = false;
            uint8_t *data = nullptr;
            JS::GetArrayBufferLengthAndData(o, &n, &shared, &data);
            out.assign(reinterpret_cast<const char *>(data), n);
            return true;
        }
    }
    JS::RootedString s(cx, JS::ToString(cx, v));
    return s && utf8(cx, s, out);
}

JSString *newString(JSContext *cx, const char *p, size_t n) {
    JSString *s = JS_NewStringCopyUTF8N(cx, JS::UTF8Chars(p, n));
    if (!s) {
        // Not UTF-8: keep every byte as one Latin-1 character rather than fail.
        JS_ClearPendingException(cx);
        s = JS_NewStringCopyN(cx, p, n);
    }
    return s;
}

JSObject *newArrayBuffer(JSContext *cx, const char *p, size_t n) {
    JS::RootedObject buffer(cx, JS::NewArrayBuffer(cx, n));
    if (!buffer || n == 0) return buffer;
    bool shared = false;
    JS::AutoCheckCannotGC nogc;
    memcpy(JS::GetArrayBufferData(buffer, &shared, nogc), p, n);
    return buffer;
}

bool throwMessage(JSContext *cx, const std::string &message) {
    JS_ReportErrorUTF8(cx, "%s", message.c_str());
    return false;
}

// An Error object with `message`, not thrown.
bool makeError(JSContext *cx, const std::string &message, JS::MutableHandleValue out) {
    throwMessage(cx, message);
    if (!JS_GetPendingException(cx, out)) return false;
    JS_ClearPendingException(cx);
    return true;
}

// ---- RESP3 -> JavaScript (client.call's replies) ----

struct Reader {
    const char *p, *end;
    std::string line() {
        const char *e = p;
        while (e + 1 < end && !(e[0] == '\r' && e[1] == '\n')) e++;
        std::string s(p, e - p);
        p = e + 2 <= end ? e + 2 : end;
        return s;
    }
};

// A String object tagged with __reply_type (and __format), as documented for statuses,
// big numbers and verbatim strings.
bool taggedString(JSContext *cx, const std::string &text, const char *type, const char *format, bool raw,
                  JS::MutableHandleValue out) {
    JS::RootedObject obj(cx);
    if (raw) {
        obj = newArrayBuffer(cx, text.data(), text.size());
    } else {
        JS::RootedValue s(cx, JS::StringValue(newString(cx, text.data(), text.size())));
        if (!JS_ValueToObject(cx, s, &obj)) return false;
    }
    if (!obj) return false;
    JS::RootedValue tag(cx, JS::StringValue(JS_NewStringCopyZ(cx, type)));
    if (!JS_DefineProperty(cx, obj, "__reply_type", tag, JSPROP_ENUMERATE)) return false;
    if (format) {
        JS::RootedValue f(cx, JS::StringValue(JS_NewStringCopyZ(cx, format)));
        if (!JS_DefineProperty(cx, obj, "__format", f, JSPROP_ENUMERATE)) return false;
    }
    out.setObject(*obj);
    return true;
}

// Reads one reply into `out`; an error reply becomes `error` (message) instead.
bool readReply(JSContext *cx, Reader &r, bool raw, JS::MutableHandleValue out, std::string *error, int depth = 0) {
    if (r.p >= r.end) {
        out.setNull();
        return true;
    }
    if (depth > 512) return throwMessage(cx, "reply nested too deeply");
    char type = *r.p++;
    std::string line = r.line();
    switch (type) {
    case '+': return taggedString(cx, line, "status", nullptr, raw, out);
    case '-':
        if (error) *error = line;
        out.setNull();
        return true;
    case ':': {
        JS::BigInt *b = JS::NumberToBigInt(cx, int64_t(strtoll(line.c_str(), nullptr, 10)));
        if (!b) return false;
        out.setBigInt(b);
        return true;
    }
    case ',': out.setDouble(strtod(line.c_str(), nullptr)); return true;
    case '#': out.setBoolean(line == "t"); return true;
    case '_': out.setNull(); return true;
    case '(': return taggedString(cx, line, "big_number", nullptr, false, out);
    case '$':
    case '=': {
        long long n = strtoll(line.c_str(), nullptr, 10);
        if (n < 0) {
            out.setNull();
            return true;
        }
        if (r.end - r.p < n) n = r.end - r.p;
        std::string body(r.p, n);
        r.p += n;
        r.p = r.end - r.p >= 2 ? r.p + 2 : r.end;
        if (type == '=') {
            std::string format = body.substr(0, 3);
            return taggedString(cx, body.size() >= 4 ? body.substr(4) : "", "verbatim", format.c_str(), raw, out);
        }
        if (raw) {
            JSObject *b = newArrayBuffer(cx, body.data(), body.size());
            if (!b) return false;
            out.setObject(*b);
        } else {
            JSString *s = newString(cx, body.data(), body.size());
            if (!s) return false;
            out.setString(s);
        }
        return true;
    }
    case '*':
    case '>':
    case '~': {
        long long n = strtoll(line.c_str(), nullptr, 10);
        if (n < 0) {
            out.setNull();
            return true;
        }
        JS::RootedObject container(cx, type == '~' ? JS::NewSetObject(cx) : JS::NewArrayObject(cx, 0));
        if (!container) return false;
        JS::RootedValue item(cx);
        for (long long i = 0; i < n; i++) {
            std::string nestedError;
            if (!readReply(cx, r, raw, &item, &nestedError, depth + 1)) return false;
            if (!nestedError.empty() && !makeError(cx, nestedError, &item)) return false;
            if (type == '~') {
                if (!JS::SetAdd(cx, container, item)) return false;
            } else if (!JS_SetElement(cx, container, uint32_t(i), item)) {
                return false;
            }
        }
        out.setObject(*container);
        return true;
    }
    case '%': {
        long long n = strtoll(line.c_str(), nullptr, 10);
        JS::RootedObject map(cx, JS_NewPlainObject(cx));
        if (!map) return false;
        JS::RootedValue key(cx), value(cx);
        for (long long i = 0; i < n; i++) {
            if (!readReply(cx, r, false, &key, nullptr, depth + 1)) return false;
            if (!readReply(cx, r, raw, &value, nullptr, depth + 1)) return false;
            JS::RootedString name(cx, JS::ToString(cx, key));
            JS::RootedId id(cx);
            if (!name || !JS_StringToId(cx, name, &id) || !JS_SetPropertyById(cx, map, id, value)) return false;
        }
        out.setObject(*map);
        return true;
    }
    default:
        out.setNull();
        r.p = r.end;
        return true;
    }
}

// ---- JavaScript -> RESP (the run's reply) ----

void appendLength(Buffer &b, char prefix, long long n) {
    char tmp[32];
    int len = snprintf(tmp, sizeof tmp, "%c%lld\r\n", prefix, n);
    b.append(tmp, size_t(len));
}

void appendBulk(Buffer &b, const std::string &s) {
    appendLength(b, '$', (long long)s.size());
    b += s;
    b += "\r\n";
}

void appendLine(Buffer &b, char prefix, std::string s) {
    for (char &c : s)
        if (c == '\r' || c == '\n') c = ' ';
    b += prefix;
    b += s;
    b += "\r\n";
}

// A number as JavaScript prints it (40, 1.5, 0.1), with Redis's spelling of infinities.
std::string formatNumber(JSContext *cx, JS::HandleValue v) {
    double d = v.toNumber();
    if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
    if (std::isnan(d)) return "nan";
    std::string out;
    JS::RootedString s(cx, JS::ToString(cx, v));
    if (!s || !utf8(cx, s, out)) {
        JS_ClearPendingException(cx);
        char tmp[64];
        snprintf(tmp, sizeof tmp, "%.17g", d);
        out = tmp;
    }
    return out;
}

// An error reply from an exception or message: a leading all-caps word is taken as the
// error code, as Redis errors carry one; otherwise ERR is added.
void appendError(Buffer &b, std::string message) {
    size_t space = message.find(' ');
    std::string first = message.substr(0, space);
    bool hasCode = !first.empty();
    for (char c : first)
        if (!(c >= 'A' && c <= 'Z') && c != '_') hasCode = false;
    if (!hasCode) message = "ERR " + message;
    appendLine(b, '-', message);
}

bool errorMessage(JSContext *cx, JS::HandleValue v, std::string &out) {
    if (v.isObject()) {
        JS::RootedObject o(cx, &v.toObject());
        JS::RootedValue message(cx);
        if (JS_GetProperty(cx, o, "message", &message) && message.isString()) {
            JS::RootedString s(cx, message.toString());
            return utf8(cx, s, out);
        }
    }
    JS::RootedString s(cx, JS::ToString(cx, v));
    if (!s) {
        JS_ClearPendingException(cx);
        out = "unknown error";
        return true;
    }
    return utf8(cx, s, out);
}

bool writeValue(JSContext *cx, JS::HandleValue v, int resp, Buffer &b, int depth = 0);

bool writeTaggedString(JSContext *cx, JS::HandleObject o, int resp, Buffer &b, bool &handled) {
    handled = false;
    JS::RootedValue tag(cx);
    if (!JS_GetProperty(cx, o, "__reply_type", &tag)) return false;
    if (!tag.isString()) return true;
    std::string type, text;
    JS::RootedString t(cx, tag.toString());
    JS::RootedValue self(cx, JS::ObjectValue(*o));
    if (!utf8(cx, t, type) || !argumentBytes(cx, self, text)) return false;
    handled = true;
    if (type == "status") {
        appendLine(b, '+', text);
    } else if (type == "big_number" && resp == 3) {
        appendLine(b, '(', text);
    } else if (type == "verbatim" && resp == 3) {
        JS::RootedValue format(cx);
        std::string f = "txt";
        if (JS_GetProperty(cx, o, "__format", &format) && format.isString()) {
            JS::RootedString fs(cx, format.toString());
            utf8(cx, fs, f);
        }
        f.resize(3, ' ');
        appendLength(b, '=', (long long)text.size() + 4);
        b += f + ":" + text + "\r\n";
    } else {
        appendBulk(b, text);
    }
    return true;
}

bool writeValue(JSContext *cx, JS::HandleValue v, int resp, Buffer &b, int depth) {
    if (depth > 512) {
        appendError(b, "ERR reply nested too deeply");
        return true;
    }
    if (v.isNullOrUndefined()) {
        b += resp == 3 ? "_\r\n" : "$-1\r\n";
        return true;
    }
    if (v.isBoolean()) {
        if (resp == 3) b += v.toBoolean() ? "#t\r\n" : "#f\r\n";
        else b += v.toBoolean() ? ":1\r\n" : ":0\r\n";
        return true;
    }
    if (v.isNumber()) {
        std::string text = formatNumber(cx, v);
        if (resp == 3) appendLine(b, ',', text);
        else appendBulk(b, text);
        return true;
    }
    if (v.isBigInt()) {
        appendLength(b, ':', (long long)JS::ToBigInt64(v.toBigInt()));
        return true;
    }
    if (v.isString()) {
        std::string s;
        JS::RootedString str(cx, v.toString());
        if (!utf8(cx, str, s)) return false;
        appendBulk(b, s);
        return true;
    }
    if (!v.isObject()) {
        std::string s;
        if (!argumentBytes(cx, v, s)) return false;
        appendBulk(b, s);
        return true;
    }
    JS::RootedObject o(cx, &v.toObject());
    if (JS::IsArrayBufferObject(o)) {
        std::string s;
        if (!argumentBytes(cx, v, s)) return false;
        appendBulk(b, s);
        return true;
    }
    bool handled = false;
    if (!writeTaggedString(cx, o, resp, b, handled)) return false;
    if (handled) return true;
    bool isArray = false;
    if (!JS::IsArrayObject(cx, o, &isArray)) return false;
    if (isArray) {
        uint32_t n = 0;
        if (!JS::GetArrayLength(cx, o, &n)) return false;
        appendLength(b, '*', n);
        JS::RootedValue item(cx);
        for (uint32_t i = 0; i < n; i++) {
            if (!JS_GetElement(cx, o, i, &item) || !writeValue(cx, item, resp, b, depth + 1)) return false;
        }
        return true;
    }
    if (JS::IsSetObject(cx, o, &isArray) && isArray) {
        // A Set: its values, through Array.from in the prelude's realm.
        JS::RootedValue values(cx);
        JS::RootedObject array(cx);
        JS::RootedValueArray<1> args(cx);
        args[0].setObject(*o);
        JS::RootedValue arrayCtor(cx);
        JS::RootedObject global(cx, JS::CurrentGlobalOrNull(cx));
        if (!JS_GetProperty(cx, global, "Array", &arrayCtor)) return false;
        JS::RootedObject ctor(cx, &arrayCtor.toObject());
        if (!JS_CallFunctionName(cx, ctor, "from", args, &values)) return false;
        array = &values.toObject();
        uint32_t n = 0;
        if (!JS::GetArrayLength(cx, array, &n)) return false;
        appendLength(b, resp == 3 ? '~' : '*', n);
        JS::RootedValue item(cx);
        for (uint32_t i = 0; i < n; i++) {
            if (!JS_GetElement(cx, array, i, &item) || !writeValue(cx, item, resp, b, depth + 1)) return false;
        }
        return true;
    }
    // A plain object: a map of its own enumerable properties.
    JS::Rooted<JS::IdVector> ids(cx, JS::IdVector(cx));
    if (!JS_Enumerate(cx, o, &ids)) return false;
    appendLength(b, resp == 3 ? '%' : '*', (long long)ids.length() * (resp == 3 ? 1 : 2));
    JS::RootedValue key(cx), value(cx);
    for (size_t i = 0; i < ids.length(); i++) {
        if (!JS_IdToValue(cx, ids[i], &key)) return false;
        std::string name;
        if (!argumentBytes(cx, key, name)) return false;
        appendBulk(b, name);
        JS::RootedId id(cx, ids[i]);
        if (!JS_GetPropertyById(cx, o, id, &value) || !writeValue(cx, value, resp, b, depth + 1)) return false;
    }
    return true;
}

// ---- natives the prelude calls ----

uint64_t runOf(const JS::CallArgs &args) { return uint64_t(args.get(0).toNumber()); }

// The command of a client call: args[2] is the array of its words.
bool commandWords(JSContext *cx, JS::HandleValue list, std::vector<std::string> &words) {
    if (!list.isObject()) return throwMessage(cx, "ERR missing command");
    JS::RootedObject array(cx, &list.toObject());
    uint32_t n = 0;
    if (!JS::GetArrayLength(cx, array, &n)) return false;
    if (n == 0) return throwMessage(cx, "ERR missing command");
    JS::RootedValue item(cx);
    words.resize(n);
    for (uint32_t i = 0; i < n; i++) {
        if (!JS_GetElement(cx, array, i, &item) || !argumentBytes(cx, item, words[i])) return false;
    }
    return true;
}

void pointers(const std::vector<std::string> &words, std::vector<const char *> &argv, std::vector<size_t> &lengths) {
    for (const auto &w : words) {
        argv.push_back(w.data());
        lengths.push_back(w.size());
    }
}

bool nativeCall(JSContext *cx, unsigned argc, JS::Value *vp) {
    JS::CallArgs args = JS::CallArgsFromVp(argc, vp);
    BerthJSEngine *e = engineOf(cx);
    std::vector<std::string> words;
    JS::RootedValue list(cx, args.get(2));
    if (!commandWords(cx, list, words)) return false;
    std::vector<const char *> argv;
    std::vector<size_t> lengths;
    pointers(words, argv, lengths);
    Buffer out;
    e->host.call(e->host.context, runOf(args), argv.data(), lengths.data(), int(argv.size()), &out);
    Reader r{out.data(), out.data() + out.size()};
    std::string error;
    if (!readReply(cx, r, args.get(1).toBoolean(), args.rval(), &error)) return false;
    if (!error.empty()) return throwMessage(cx, error);
    return true;
}

bool nativeCallAsync(JSContext *cx, unsigned argc, JS::Value *vp) {
    JS::CallArgs args = JS::CallArgsFromVp(argc, vp);
    BerthJSEngine *e = engineOf(cx);
    std::vector<std::string> words;
    JS::RootedValue list(cx, args.get(3));
    if (!commandWords(cx, list, words)) return false;
    std::vector<const char *> argv;
    std::vector<size_t> lengths;
    pointers(words, argv, lengths);
    e->host.call_async(e->host.context, runOf(args), uint64_t(args.get(1).toNumber()), args.get(2).toBoolean() ? 1 : 0,
                       argv.data(), lengths.data(), int(argv.size()));
    args.rval().setUndefined();
    return true;
}

bool nativeEnter(JSContext *cx, unsigned argc, JS::Value *vp) {
    JS::CallArgs args = JS::CallArgsFromVp(argc, vp);
    BerthJSEngine *e = engineOf(cx);
    Buffer reason;
    if (e->host.enter(e->host.context, runOf(args), &reason) != 0) return throwMessage(cx, reason);
    args.rval().setUndefined();
    return true;
}

bool nativeLeave(JSContext *cx, unsigned argc, JS::Value *vp) {
    JS::CallArgs args = JS::CallArgsFromVp(argc, vp);
    BerthJSEngine *e = engineOf(cx);
    e->host.leave(e->host.context, runOf(args));
    args.rval().setUndefined();
    return true;
}

bool nativeBlockAllowed(JSContext *cx, unsigned argc, JS::Value *vp) {
    JS::CallArgs args = JS::CallArgsFromVp(argc, vp);
    BerthJSEngine *e = engineOf(cx);
    args.rval().setBoolean(e->host.block_allowed(e->host.context, runOf(args)) != 0);
    return true;
}

bool nativeFinish(JSContext *cx, unsigned argc, JS::Value *vp) {
    JS::CallArgs args = JS::CallArgsFromVp(argc, vp);
    BerthJSEngine *e = engineOf(cx);
    uint64_t run = runOf(args);
    auto found = e->protocols.find(run);
    if (found == e->protocols.end()) return true;  // finished already
    int resp = found->second;
    e->protocols.erase(found);
    Buffer out;
    if (args.get(2).toBoolean()) {
        std::string message;
        JS::RootedValue error(cx, args.get(1));
        errorMessage(cx, error, message);
        appendError(out, message);
    } else {
        JS::RootedValue value(cx, args.get(1));
        if (!writeValue(cx, value, resp, out)) {
            if (!JS_IsExceptionPending(cx)) return false;
            JS::RootedValue exception(cx);
            JS_GetPendingException(cx, &exception);
            JS_ClearPendingException(cx);
            std::string message;
            errorMessage(cx, exception, message);
            out.clear();
            appendError(out, message);
        }
    }
    e->host.finish(e->host.context, run, out.data(), out.size());
    args.rval().setUndefined();
    return true;
}

bool nativeLog(JSContext *cx, unsigned argc, JS::Value *vp) {
    JS::CallArgs args = JS::CallArgsFromVp(argc, vp);
    BerthJSEngine *e = engineOf(cx);
    std::string message;
    JS::RootedValue text(cx, args.get(1));
    if (!argumentBytes(cx, text, message)) return false;
    e->host.log(e->host.context, int(args.get(0).toNumber()), message.data(), message.size());
    args.rval().setUndefined();
    return true;
}

bool nativeDecode(JSContext *cx, unsigned argc, JS::Value *vp) {
    JS::CallArgs args = JS::CallArgsFromVp(argc, vp);
    std::string bytes;
    JS::RootedValue v(cx, args.get(0));
    if (!argumentBytes(cx, v, bytes)) return false;
    JSString *s = newString(cx, bytes.data(), bytes.size());
    if (!s) return false;
    args.rval().setString(s);
    return true;
}

// Asked for through JS_RequestInterruptCallback: false stops the running script, as an
// uncatchable termination.
bool interruptCallback(JSContext *cx) {
    BerthJSEngine *e = engineOf(cx);
    if (e->stopReason.exchange(0) == 1) {
        e->terminated = 1;
        return false;
    }
    size_t limit = e->memoryLimit.load();
    if (limit) {
        struct mallinfo2 m = mallinfo2();
        if (m.uordblks + m.hblkhd > limit) {
            e->terminated = 2;
            return false;
        }
    }
    return true;
}

const JSClass globalClass = {"global", JSCLASS_GLOBAL_FLAGS, &JS::DefaultGlobalClassOps};

// Calls hook `name` of the prelude with `args`.
bool callHook(BerthJSEngine *e, const char *name, const JS::HandleValueArray &args, JS::MutableHandleValue result) {
    JS::RootedObject hooks(e->cx, *e->hooks);
    return JS_CallFunctionName(e->cx, hooks, name, args, result);
}

// A pending exception (or a termination) as the message the host gets.
std::string takeFailure(BerthJSEngine *e) {
    JSContext *cx = e->cx;
    if (!JS_IsExceptionPending(cx)) {
        return e->terminated == 2 ? "ERR Execution was terminated: the memory limit was reached"
                                  : "ERR Execution was terminated due to timeout";
    }
    JS::ExceptionStack stack(cx);
    JS::StealPendingExceptionStack(cx, &stack);
    std::string message;
    JS::RootedValue exception(cx, stack.exception());
    errorMessage(cx, exception, message);
    // Where in the library it happened: the innermost frame in the library's code (not
    // the prelude's), else the error's own position (a SyntaxError has no frames there).
    uint32_t line = 0;
    JS::RootedObject frame(cx, stack.stack());
    while (frame && !line) {
        JS::RootedString source(cx);
        JS::GetSavedFrameSource(cx, nullptr, frame, &source);
        std::string name;
        if (source && utf8(cx, source, name) && name == "library.js") JS::GetSavedFrameLine(cx, nullptr, frame, &line);
        JS::RootedObject parent(cx);
        JS::GetSavedFrameParent(cx, nullptr, frame, &parent);
        frame = parent;
    }
    if (!line && exception.isObject()) {
        JS::RootedObject error(cx, &exception.toObject());
        JS::RootedValue file(cx), number(cx);
        std::string name;
        if (JS_GetProperty(cx, error, "fileName", &file) && file.isString() && JS_GetProperty(cx, error, "lineNumber", &number) &&
            number.isNumber()) {
            JS::RootedString f(cx, file.toString());
            if (utf8(cx, f, name) && name == "library.js") line = uint32_t(number.toNumber());
        }
    }
    JS_ClearPendingException(cx);
    if (line) message += " (library.js line " + std::to_string(line) + ")";
    return message;
}

void runJobs(BerthJSEngine *e) { js::RunJobs(e->cx); }

// ---- the C table ----

int apiInitialize() { return JS_Init() ? 0 : -1; }

BerthJSEngine *apiEngineNew(const BerthJSHost *host, size_t gcMaxBytes) {
    auto *e = new BerthJSEngine();
    e->host = *host;
    JSContext *cx = JS_NewContext(JS::DefaultHeapMaxBytes);
    if (!cx) {
        delete e;
        return nullptr;
    }
    e->cx = cx;
    JS_SetContextPrivate(cx, e);
    // Below the engine thread's 8 MB stack: deep recursion becomes a catchable error.
    JS_SetNativeStackQuota(cx, 6 * 1024 * 1024);
    if (gcMaxBytes) JS_SetGCParameter(cx, JSGC_MAX_BYTES, uint32_t(std::min<size_t>(gcMaxBytes, 0xffffffffu)));
    if (!js::UseInternalJobQueues(cx) || !JS::InitSelfHostedCode(cx)) {
        JS_DestroyContext(cx);
        delete e;
        return nullptr;
    }
    JS_AddInterruptCallback(cx, interruptCallback);
    JS::RealmOptions options;
    JS::RootedObject global(cx, JS_NewGlobalObject(cx, &globalClass, nullptr, JS::FireOnNewGlobalHook, options));
    if (!global) {
        JS_DestroyContext(cx);
        delete e;
        return nullptr;
    }
    e->global = new JS::PersistentRootedObject(cx, global);
    JS::EnterRealm(cx, global);
    if (!JS::InitRealmStandardClasses(cx)) return nullptr;
    // The prelude: a function of the natives object, returning the hooks.
    JS::RootedObject natives(cx, JS_NewPlainObject(cx));
    static const JSFunctionSpec nativeSpecs[] = {
        JS_FN("call", nativeCall, 3, 0),
        JS_FN("callAsync", nativeCallAsync, 4, 0),
        JS_FN("enter", nativeEnter, 1, 0),
        JS_FN("leave", nativeLeave, 1, 0),
        JS_FN("blockAllowed", nativeBlockAllowed, 1, 0),
        JS_FN("finish", nativeFinish, 3, 0),
        JS_FN("log", nativeLog, 2, 0),
        JS_FN("decode", nativeDecode, 1, 0),
        JS_FS_END,
    };
    if (!natives || !JS_DefineFunctions(cx, natives, nativeSpecs)) return nullptr;
    JS::CompileOptions compile(cx);
    compile.setFileAndLine("berth-prelude.js", 1);
    JS::SourceText<mozilla::Utf8Unit> source;
    if (!source.init(cx, berth_js_prelude, strlen(berth_js_prelude), JS::SourceOwnership::Borrowed)) return nullptr;
    JS::RootedValue factory(cx);
    if (!JS::Evaluate(cx, compile, source, &factory)) return nullptr;
    JS::RootedValueArray<1> args(cx);
    args[0].setObject(*natives);
    JS::RootedValue hooks(cx);
    if (!JS_CallFunctionValue(cx, nullptr, factory, args, &hooks)) return nullptr;
    e->hooks = new JS::PersistentRootedObject(cx, &hooks.toObject());
    JS::RootedObject hookObject(cx, &hooks.toObject());
    JS::RootedValue redis(cx);
    if (!JS_GetProperty(cx, hookObject, "redis", &redis) ||
        !JS_DefineProperty(cx, global, "redis", redis, JSPROP_READONLY | JSPROP_PERMANENT | JSPROP_ENUMERATE))
        return nullptr;
    return e;
}

void apiEngineFree(BerthJSEngine *e) {
    if (!e) return;
    delete e->hooks;
    delete e->global;
    JS_DestroyContext(e->cx);
    delete e;
}

int apiLoad(BerthJSEngine *e, const char *code, size_t length, const char *config, size_t configLength, BerthJSBuffer *out) {
    JSContext *cx = e->cx;
    Buffer &b = *static_cast<Buffer *>(out);
    e->terminated = 0;
    JS::RootedValue configValue(cx);
    if (configLength > 0) {
        JS::RootedString text(cx, newString(cx, config, configLength));
        if (!text || !JS_ParseJSON(cx, text, &configValue)) {
            JS_ClearPendingException(cx);
            b = "ERR the CONFIG argument is not valid JSON";
            return -1;
        }
    } else {
        configValue.setObject(*JS_NewPlainObject(cx));
    }
    JS::RootedValueArray<1> beginArgs(cx);
    beginArgs[0].set(configValue);
    JS::RootedValue ignored(cx);
    if (!callHook(e, "begin", beginArgs, &ignored)) {
        b = takeFailure(e);
        return -1;
    }
    JS::CompileOptions compile(cx);
    compile.setFileAndLine("library.js", 1);
    JS::SourceText<mozilla::Utf8Unit> source;
    bool ok = source.init(cx, code, length, JS::SourceOwnership::Borrowed);
    JS::RootedValue result(cx);
    ok = ok && JS::Evaluate(cx, compile, source, &result);
    std::string failure = ok ? "" : takeFailure(e);
    runJobs(e);
    JS::RootedValue functions(cx);
    if (!callHook(e, "end", JS::HandleValueArray::empty(), &functions)) {
        b = takeFailure(e);
        return -1;
    }
    if (!ok) {
        b = failure;
        return -1;
    }
    JS::RootedObject list(cx, &functions.toObject());
    uint32_t n = 0;
    JS::GetArrayLength(cx, list, &n);
    b.clear();
    JS::RootedValue item(cx);
    for (uint32_t i = 0; i < n; i++) {
        std::string text;
        JS_GetElement(cx, list, i, &item);
        argumentBytes(cx, item, text);
        b += text;
        b.push_back('\0');
    }
    return 0;
}

void apiInvoke(BerthJSEngine *e, uint64_t run, const char *name, const char *const *argv, const size_t *lengths, int argc,
               int resp) {
    JSContext *cx = e->cx;
    e->protocols[run] = resp;
    e->terminated = 0;
    JS::RootedObject list(cx, JS::NewArrayObject(cx, 0));
    for (int i = 0; list && i < argc; i++) {
        JS::RootedValue buffer(cx, JS::ObjectOrNullValue(newArrayBuffer(cx, argv[i], lengths[i])));
        JS_SetElement(cx, list, uint32_t(i), buffer);
    }
    JS::RootedValueArray<3> args(cx);
    args[0].setNumber(double(run));
    args[1].setString(JS_NewStringCopyZ(cx, name));
    args[2].setObjectOrNull(list);
    JS::RootedValue ignored(cx);
    if (!callHook(e, "invoke", args, &ignored) && e->protocols.erase(run)) {
        Buffer out;
        appendError(out, takeFailure(e));
        e->host.finish(e->host.context, run, out.data(), out.size());
    }
    runJobs(e);
}

void apiSettle(BerthJSEngine *e, uint64_t promise, int raw, const char *reply, size_t length) {
    JSContext *cx = e->cx;
    e->terminated = 0;
    Reader r{reply, reply + length};
    std::string error;
    JS::RootedValue value(cx);
    if (!readReply(cx, r, raw != 0, &value, &error)) {
        JS_ClearPendingException(cx);
        error = "ERR unreadable reply";
    }
    if (!error.empty()) makeError(cx, error, &value);
    JS::RootedValueArray<3> args(cx);
    args[0].setNumber(double(promise));
    args[1].setBoolean(error.empty());
    args[2].set(value);
    JS::RootedValue ignored(cx);
    if (!callHook(e, "settle", args, &ignored)) JS_ClearPendingException(cx);
    runJobs(e);
}

void apiInterrupt(BerthJSEngine *e, int reason, size_t memoryLimit) {
    e->memoryLimit.store(memoryLimit);
    if (reason == 1) e->stopReason.store(1);
    JS_RequestInterruptCallback(e->cx);
}

int apiTerminated(BerthJSEngine *e) { return e->terminated; }

void apiShutdown() { JS_ShutDown(); }

BerthJSBuffer *apiBufferNew() { return new Buffer(); }
void apiBufferFree(BerthJSBuffer *b) { delete static_cast<Buffer *>(b); }
void apiBufferAppend(BerthJSBuffer *b, const char *bytes, size_t length) { static_cast<Buffer *>(b)->append(bytes, length); }
const char *apiBufferBytes(BerthJSBuffer *b, size_t *length) {
    auto *s = static_cast<Buffer *>(b);
    *length = s->size();
    return s->data();
}
void apiBufferClear(BerthJSBuffer *b) { static_cast<Buffer *>(b)->clear(); }

const BerthJSAPI api = {
    BERTH_JS_API_VERSION, apiInitialize, apiEngineNew, apiEngineFree, apiLoad, apiInvoke, apiSettle,
    apiInterrupt, apiTerminated, apiShutdown, apiBufferNew, apiBufferFree, apiBufferAppend, apiBufferBytes, apiBufferClear,
};

}  // namespace

extern "C" __attribute__((visibility("default"))) const BerthJSAPI *berth_js_api(void) { return &api; }
