// libBerthJS: strings, and the RESP <-> JavaScript conversions documented for
// triggers and functions (client.call's replies in, a function's result out).
#include "engine_internal.h"

namespace berthjs {


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

std::string Reader::line() {
    const char *e = p;
    while (e + 1 < end && !(e[0] == '\r' && e[1] == '\n')) e++;
    std::string s(p, e - p);
    p = e + 2 <= end ? e + 2 : end;
    return s;
}

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
bool readReply(JSContext *cx, Reader &r, bool raw, JS::MutableHandleValue out, std::string *error, int depth) {
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

}  // namespace berthjs
