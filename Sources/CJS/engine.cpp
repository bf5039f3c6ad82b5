// libBerthJS: one SpiderMonkey context per library, behind the C table of
// berth_js_api.h. The `redis` object and the clients are written in JavaScript
// (prelude.cpp); the natives it calls are in natives.cpp, the RESP <-> JavaScript
// conversions in values.cpp. This file sets a context up, runs loads, calls and promise
// settlements in it, and stops runaway code through the interrupt callback.
#include "engine_internal.h"
#include "berth_js_prelude.h"

using namespace berthjs;

namespace {

// Asked for through JS_RequestInterruptCallback: false stops the running script, as an
// uncatchable termination.
bool interruptCallback(JSContext *cx) {
    BerthJSEngine *e = engineOf(cx);
    if (e->stopReason.exchange(0) == 1) {
        e->terminated = 1;
        return false;
    }
    size_t limit = e->memoryLimit.load();
    if (limit && e->host.allocated_bytes) {
        if (e->host.allocated_bytes() > limit) {
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
    if (!natives || !defineNatives(cx, natives)) return nullptr;
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
