// libBerthJS: the natives the prelude calls (prelude.cpp), each forwarding to the
// server's host table with the run it acts for.
#include "engine_internal.h"

namespace berthjs {
namespace {

uint64_t runOf(const JS::CallArgs &args) { return uint64_t(args.get(0).toNumber()); }

// The command of a client call (a JavaScript array of its words), with the C arrays the
// host table takes pointing into those words.
struct Command {
    std::vector<std::string> words;
    std::vector<const char *> argv;
    std::vector<size_t> lengths;
    int count() const { return int(argv.size()); }
};

bool readCommand(JSContext *cx, JS::HandleValue list, Command &command) {
    if (!list.isObject()) return throwMessage(cx, "ERR missing command");
    JS::RootedObject array(cx, &list.toObject());
    uint32_t n = 0;
    if (!JS::GetArrayLength(cx, array, &n)) return false;
    if (n == 0) return throwMessage(cx, "ERR missing command");
    JS::RootedValue item(cx);
    command.words.resize(n);
    for (uint32_t i = 0; i < n; i++) {
        if (!JS_GetElement(cx, array, i, &item) || !argumentBytes(cx, item, command.words[i])) return false;
    }
    for (const auto &w : command.words) {
        command.argv.push_back(w.data());
        command.lengths.push_back(w.size());
    }
    return true;
}

bool nativeCall(JSContext *cx, unsigned argc, JS::Value *vp) {
    JS::CallArgs args = JS::CallArgsFromVp(argc, vp);
    BerthJSEngine *e = engineOf(cx);
    Command command;
    JS::RootedValue list(cx, args.get(2));
    if (!readCommand(cx, list, command)) return false;
    Buffer out;
    e->host.call(e->host.context, runOf(args), command.argv.data(), command.lengths.data(), command.count(), &out);
    Reader r{out.data(), out.data() + out.size()};
    std::string error;
    if (!readReply(cx, r, args.get(1).toBoolean(), args.rval(), &error)) return false;
    if (!error.empty()) return throwMessage(cx, error);
    return true;
}

bool nativeCallAsync(JSContext *cx, unsigned argc, JS::Value *vp) {
    JS::CallArgs args = JS::CallArgsFromVp(argc, vp);
    BerthJSEngine *e = engineOf(cx);
    Command command;
    JS::RootedValue list(cx, args.get(3));
    if (!readCommand(cx, list, command)) return false;
    e->host.call_async(e->host.context, runOf(args), uint64_t(args.get(1).toNumber()), args.get(2).toBoolean() ? 1 : 0,
                       command.argv.data(), command.lengths.data(), command.count());
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

}  // namespace

bool defineNatives(JSContext *cx, JS::HandleObject natives) {
    static const JSFunctionSpec specs[] = {
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
    return JS_DefineFunctions(cx, natives, specs);
}

}  // namespace berthjs
