// Berth's Lua host: the script environment Redis gives EVAL scripts, built on Lua 5.1.
#include "berth_lua.h"

#include <lua5.1/lauxlib.h>
#include <lua5.1/lua.h>
#include <lua5.1/lualib.h>

// Debian's lua-cjson-dev and lua-bitop-dev, linked statically: the `cjson` and `bit`
// libraries Redis gives scripts.
extern int luaopen_cjson(lua_State *L);
extern int luaopen_bit(lua_State *L);
// Berth's own `cmsgpack` and `struct` (msgpack.c, struct.c): Debian packages neither.
extern int berth_luaopen_cmsgpack(lua_State *L);
extern int berth_luaopen_struct(lua_State *L);
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *p;
    size_t n, cap;
} Buf;

struct BerthLua {
    lua_State *L;
    BerthLuaCommand command;
    BerthLuaLog log;
    BerthLuaBusy busy;
    void *context;      // the Swift side's, during a run
    Buf result;         // the last load or run's reply
    Buf call;           // redis.call's reply bytes
    int resp;           // redis.setresp
    int line;           // the script line of the last error
    const char *chunk;  // "user_script" or "user_function": where errors point
    uint64_t random;    // math.random's state, reset for every run
    int restart;        // the host asked for the run to be abandoned (see raise_restart)
};

static const char *REGISTRY_HOST = "berth.host";
static const char *REGISTRY_SCRIPTS = "berth.scripts";
static const char *REGISTRY_FUNCTIONS = "berth.functions";
static const char *REGISTRY_PENDING = "berth.pending";

// ---- buffers ----

static void buf_append(Buf *b, const char *s, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        b->p = realloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void buf_str(Buf *b, const char *s) { buf_append(b, s, strlen(s)); }

static void buf_fmt(Buf *b, const char *prefix, long long v) {
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%s%lld\r\n", prefix, v);
    buf_append(b, tmp, (size_t)n);
}

void berth_lua_reply_append(void *out, const char *bytes, size_t length) { buf_append(out, bytes, length); }

// An error reply: newlines would break the protocol, so they become spaces.
static void buf_error(Buf *b, const char *msg, size_t n) {
    buf_append(b, "-", 1);
    size_t start = b->n;
    buf_append(b, msg, n);
    for (size_t i = start; i < b->n; i++)
        if (b->p[i] == '\r' || b->p[i] == '\n') b->p[i] = ' ';
    buf_append(b, "\r\n", 2);
}

static BerthLua *host(lua_State *L) {
    lua_getfield(L, LUA_REGISTRYINDEX, REGISTRY_HOST);
    BerthLua *h = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return h;
}

// ---- RESP2 reply -> Lua value ----

static const char *parse_reply(lua_State *L, const char *p, const char *end);

static const char *line_end(const char *p, const char *end) {
    while (p + 1 < end && !(p[0] == '\r' && p[1] == '\n')) p++;
    return p;
}

static const char *push_status_table(lua_State *L, const char *field, const char *p, const char *end) {
    const char *e = line_end(p, end);
    lua_createtable(L, 0, 1);
    lua_pushlstring(L, p, (size_t)(e - p));
    lua_setfield(L, -2, field);
    return e + 2;
}

// A one-field table {field = value}, with the value on top of the stack.
static void wrap_in_table(lua_State *L, const char *field) {
    lua_createtable(L, 0, 1);
    lua_insert(L, -2);
    lua_setfield(L, -2, field);
}

// Parses `n` map pairs (or set members, whose values become true) into a table, wrapped
// as {map = ...} or {set = ...} the way Redis hands RESP3 aggregates to scripts.
static const char *parse_pairs(lua_State *L, const char *p, const char *end, long long n, int set) {
    lua_createtable(L, 0, n > 0 && n < 1 << 20 ? (int)n : 0);
    for (long long i = 0; i < n; i++) {
        p = parse_reply(L, p, end);
        if (set) lua_pushboolean(L, 1);
        else p = parse_reply(L, p, end);
        if (lua_isnil(L, -2)) lua_pop(L, 2);  // a null key cannot index a table
        else lua_settable(L, -3);
    }
    wrap_in_table(L, set ? "set" : "map");
    return p;
}

static const char *parse_reply(lua_State *L, const char *p, const char *end) {
    if (p >= end) {
        lua_pushboolean(L, 0);
        return end;
    }
    luaL_checkstack(L, 6, "reply nested too deeply");
    char type = *p++;
    const char *e = line_end(p, end);
    switch (type) {
    case '+': return push_status_table(L, "ok", p, end);
    case '-': return push_status_table(L, "err", p, end);
    case ':':
        lua_pushnumber(L, (lua_Number)strtoll(p, NULL, 10));
        return e + 2;
    // RESP3, after redis.setresp(3).
    case '_':
        lua_pushnil(L);
        return e + 2;
    case '#':
        lua_pushboolean(L, *p == 't');
        return e + 2;
    case ',': {
        char tmp[64];
        size_t n = (size_t)(e - p) < sizeof tmp - 1 ? (size_t)(e - p) : sizeof tmp - 1;
        memcpy(tmp, p, n);
        tmp[n] = 0;
        lua_pushnumber(L, strtod(tmp, NULL));  // also reads inf, -inf and nan
        wrap_in_table(L, "double");
        return e + 2;
    }
    case '(':
        lua_pushlstring(L, p, (size_t)(e - p));
        wrap_in_table(L, "big_number");
        return e + 2;
    case '=': {
        long long n = strtoll(p, NULL, 10);
        p = e + 2;
        lua_createtable(L, 0, 2);
        lua_pushlstring(L, p, n >= 3 ? 3 : (size_t)n);
        lua_setfield(L, -2, "format");
        lua_pushlstring(L, p + (n >= 4 ? 4 : n), n >= 4 ? (size_t)n - 4 : 0);
        lua_setfield(L, -2, "string");
        wrap_in_table(L, "verbatim_string");
        return p + n + 2;
    }
    case '%':
    case '~':
        return parse_pairs(L, e + 2, end, strtoll(p, NULL, 10), type == '~');
    case '|': {
        // Attributes are not shown to scripts: skip them and read the reply they annotate.
        p = parse_pairs(L, e + 2, end, strtoll(p, NULL, 10), 0);
        lua_pop(L, 1);
        return parse_reply(L, p, end);
    }
    case '$':
    case '*':
    case '>': {
        // A length line; a null bulk or null array becomes false, as Redis converts it.
        long long n = strtoll(p, NULL, 10);
        p = e + 2;
        if (n < 0) {
            lua_pushboolean(L, 0);
            return p;
        }
        if (type == '$') {
            lua_pushlstring(L, p, (size_t)n);
            return p + n + 2;
        }
        lua_createtable(L, (int)n, 0);
        for (long long i = 1; i <= n; i++) {
            p = parse_reply(L, p, end);
            lua_rawseti(L, -2, (int)i);
        }
        return p;
    }
    default:
        lua_pushboolean(L, 0);
        return end;
    }
}

// ---- Lua value -> reply ----

// Which protocols a conversion writes for: the client's decides the reply's shape
// (RESP3 maps, sets, doubles and booleans flatten to RESP2 forms for a RESP2 client);
// the script's (redis.setresp) decides what a Lua boolean means, as in Redis.
typedef struct {
    int client;
    int script;
} Protocols;

static void write_bulk(Buf *b, const char *s, size_t n) {
    buf_fmt(b, "$", (long long)n);
    buf_append(b, s, n);
    buf_append(b, "\r\n", 2);
}

static void write_null(Buf *b, Protocols resp) { buf_str(b, resp.client == 3 ? "_\r\n" : "$-1\r\n"); }

// A line-protocol value must not carry CR or LF.
static void write_line(Buf *b, const char *prefix, const char *s, size_t n) {
    buf_str(b, prefix);
    size_t start = b->n;
    buf_append(b, s, n);
    for (size_t i = start; i < b->n; i++)
        if (b->p[i] == '\r' || b->p[i] == '\n') b->p[i] = ' ';
    buf_append(b, "\r\n", 2);
}

static void write_double(Buf *b, Protocols resp, double d) {
    char tmp[64];
    int n;
    if (isinf(d)) n = snprintf(tmp, sizeof tmp, "%s", d > 0 ? "inf" : "-inf");
    else n = snprintf(tmp, sizeof tmp, "%.17g", d);
    if (resp.client == 3) write_line(b, ",", tmp, (size_t)n);
    else write_bulk(b, tmp, (size_t)n);
}

// The table's field `name` if it has type `type` (pushed), else nothing pushed.
static int get_field(lua_State *L, const char *name, int type) {
    lua_pushstring(L, name);
    lua_rawget(L, -2);
    if (lua_type(L, -1) == type) return 1;
    lua_pop(L, 1);
    return 0;
}

static void write_value(lua_State *L, Buf *b, Protocols resp, int depth);

// {map = t} / {set = t}: every pair of t (keys only for a set).
static void write_pairs(lua_State *L, Buf *b, Protocols resp, int depth, int set) {
    long long n = 0;
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lua_pop(L, 1);
        n++;
    }
    if (set) buf_fmt(b, resp.client == 3 ? "~" : "*", n);
    else buf_fmt(b, resp.client == 3 ? "%" : "*", resp.client == 3 ? n : 2 * n);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lua_pushvalue(L, -2);
        write_value(L, b, resp, depth + 1);
        lua_pop(L, 1);
        if (!set) write_value(L, b, resp, depth + 1);
        lua_pop(L, 1);
    }
}

static void write_table(lua_State *L, Buf *b, Protocols resp, int depth) {
    if (get_field(L, "err", LUA_TSTRING)) {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        buf_error(b, s, n);
        lua_pop(L, 1);
        return;
    }
    if (get_field(L, "ok", LUA_TSTRING)) {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        write_line(b, "+", s, n);
        lua_pop(L, 1);
        return;
    }
    if (get_field(L, "double", LUA_TNUMBER)) {
        write_double(b, resp, lua_tonumber(L, -1));
        lua_pop(L, 1);
        return;
    }
    if (get_field(L, "big_number", LUA_TSTRING)) {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        if (resp.client == 3) write_line(b, "(", s, n);
        else write_bulk(b, s, n);
        lua_pop(L, 1);
        return;
    }
    if (get_field(L, "verbatim_string", LUA_TTABLE)) {
        lua_getfield(L, -1, "format");
        lua_getfield(L, -2, "string");
        if (lua_type(L, -1) == LUA_TSTRING && lua_type(L, -2) == LUA_TSTRING) {
            size_t fn, sn;
            const char *format = lua_tolstring(L, -2, &fn);
            const char *s = lua_tolstring(L, -1, &sn);
            if (resp.client == 3) {
                char head[8] = "txt";
                memcpy(head, format, fn < 3 ? fn : 3);
                buf_fmt(b, "=", (long long)sn + 4);
                buf_append(b, head, 3);
                buf_append(b, ":", 1);
                buf_append(b, s, sn);
                buf_append(b, "\r\n", 2);
            } else {
                write_bulk(b, s, sn);
            }
            lua_pop(L, 3);
            return;
        }
        lua_pop(L, 3);
    }
    if (depth > 1000 || !lua_checkstack(L, 4)) {
        buf_str(b, "-ERR reached lua stack limit\r\n");
        return;
    }
    int set = 0;
    if (get_field(L, "map", LUA_TTABLE) || (set = get_field(L, "set", LUA_TTABLE))) {
        write_pairs(L, b, resp, depth, set);
        lua_pop(L, 1);
        return;
    }
    int n = 0;
    for (;; n++) {  // the array part, up to the first nil, as Redis converts it
        lua_rawgeti(L, -1, n + 1);
        int nil = lua_isnil(L, -1);
        lua_pop(L, 1);
        if (nil) break;
    }
    buf_fmt(b, "*", n);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        write_value(L, b, resp, depth + 1);
        lua_pop(L, 1);
    }
}

// Writes the value at the top of the stack (leaving it there) as a reply.
static void write_value(lua_State *L, Buf *b, Protocols resp, int depth) {
    switch (lua_type(L, -1)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        write_bulk(b, s, n);
        break;
    }
    case LUA_TNUMBER: buf_fmt(b, ":", (long long)lua_tonumber(L, -1)); break;
    case LUA_TBOOLEAN:
        if (resp.script == 3) {
            int v = lua_toboolean(L, -1);
            if (resp.client == 3) buf_str(b, v ? "#t\r\n" : "#f\r\n");
            else buf_str(b, v ? ":1\r\n" : ":0\r\n");
        } else if (lua_toboolean(L, -1)) {
            buf_str(b, ":1\r\n");
        } else {
            write_null(b, resp);
        }
        break;
    case LUA_TTABLE: write_table(L, b, resp, depth); break;
    default: write_null(b, resp);
    }
}

// ---- the redis table ----

// The host could not run a command without waiting for locks before the script wrote
// anything: the run is abandoned, to be started again with every lock. The error passes
// through the script's pcall, and every later redis.call raises it again, so that nothing
// the script does after this point counts.
static int raise_restart(lua_State *L, BerthLua *h) {
    h->restart = 1;
    lua_createtable(L, 0, 1);
    lua_pushstring(L, "ERR script run abandoned, to be started again");
    lua_setfield(L, -2, "err");
    return lua_error(L);
}

static int redis_command(lua_State *L, int raise) {
    BerthLua *h = host(L);
    if (h->restart) return raise_restart(L, h);
    int argc = lua_gettop(L);
    if (argc == 0) {
        lua_createtable(L, 0, 1);
        lua_pushstring(L, "ERR Please specify at least one argument for this redis lib call");
        lua_setfield(L, -2, "err");
        if (raise) return lua_error(L);
        return 1;
    }
    const char **argv = malloc(sizeof(char *) * (size_t)argc);
    size_t *lens = malloc(sizeof(size_t) * (size_t)argc);
    for (int i = 0; i < argc; i++) {
        int t = lua_type(L, i + 1);
        if (t != LUA_TSTRING && t != LUA_TNUMBER) {
            free(argv);
            free(lens);
            lua_createtable(L, 0, 1);
            lua_pushstring(L, "ERR Lua redis lib command arguments must be strings or integers");
            lua_setfield(L, -2, "err");
            if (raise) return lua_error(L);
            return 1;
        }
        argv[i] = lua_tolstring(L, i + 1, &lens[i]);  // numbers become strings in place
    }
    h->call.n = 0;
    int status = h->command(h->context, argv, lens, argc, h->resp, &h->call);
    free(argv);
    free(lens);
    if (status == -2) return raise_restart(L, h);
    parse_reply(L, h->call.p, h->call.p + h->call.n);
    if (raise && h->call.n > 0 && h->call.p[0] == '-') return lua_error(L);
    return 1;
}

static int redis_call(lua_State *L) { return redis_command(L, 1); }
static int redis_pcall(lua_State *L) { return redis_command(L, 0); }

// Pushes an error table {err = "ERR <message>"}: the form redis.* functions use for their
// own argument errors, which reach the client without a script position, as in Redis.
static void push_error_table(lua_State *L, const char *message) {
    lua_createtable(L, 0, 1);
    lua_pushfstring(L, "ERR %s", message);
    lua_setfield(L, -2, "err");
}

static int raise_error(lua_State *L, const char *message) {
    push_error_table(L, message);
    return lua_error(L);
}

static int redis_reply_table(lua_State *L, const char *field) {
    if (lua_gettop(L) != 1 || !lua_isstring(L, 1)) {
        push_error_table(L, "wrong number or type of arguments");
        return 1;
    }
    const char *s = lua_tostring(L, 1);
    lua_createtable(L, 0, 1);
    lua_pushstring(L, s);
    lua_setfield(L, -2, field);
    return 1;
}

static int redis_error_reply(lua_State *L) { return redis_reply_table(L, "err"); }
static int redis_status_reply(lua_State *L) { return redis_reply_table(L, "ok"); }

static int redis_sha1hex(lua_State *L) {
    if (lua_gettop(L) != 1) return raise_error(L, "wrong number of arguments");
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    char hex[41];
    berth_sha1_hex(s, n, hex);
    lua_pushstring(L, hex);
    return 1;
}

static int redis_log(lua_State *L) {
    if (lua_gettop(L) < 2) return raise_error(L, "redis.log() requires two arguments or more.");
    if (!lua_isnumber(L, 1)) return raise_error(L, "First argument must be a number (log level).");
    int level = (int)lua_tointeger(L, 1);
    if (level < 0 || level > 3) return raise_error(L, "Invalid debug level.");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 2; i <= lua_gettop(L); i++) {
        if (i > 2) luaL_addchar(&b, ' ');
        size_t n;
        const char *s = lua_tolstring(L, i, &n);
        if (s) luaL_addlstring(&b, s, n);
    }
    luaL_pushresult(&b);
    size_t n;
    const char *msg = lua_tolstring(L, -1, &n);
    BerthLua *h = host(L);
    if (h->context) h->log(h->context, level, msg, n);  // no client to attribute it to while loading
    return 0;
}

static int redis_setresp(lua_State *L) {
    if (lua_gettop(L) != 1) return raise_error(L, "redis.setresp() requires one argument.");
    int v = (int)luaL_checkinteger(L, 1);
    if (v != 2 && v != 3) return raise_error(L, "RESP version must be 2 or 3.");
    host(L)->resp = v;
    return 0;
}

static int redis_noop(lua_State *L) { (void)L; return 0; }
static int redis_true(lua_State *L) { lua_pushboolean(L, 1); return 1; }

// ---- math.random: deterministic within a script, as Redis makes it ----

static int math_random(lua_State *L) {
    BerthLua *h = host(L);
    h->random = h->random * 6364136223846793005ULL + 1442695040888963407ULL;
    double r = (double)(h->random >> 11) / (double)(1ULL << 53);
    switch (lua_gettop(L)) {
    case 0: lua_pushnumber(L, r); break;
    case 1: {
        int u = (int)luaL_checkinteger(L, 1);
        luaL_argcheck(L, 1 <= u, 1, "interval is empty");
        lua_pushnumber(L, (lua_Number)((int)(r * u) + 1));
        break;
    }
    case 2: {
        int l = (int)luaL_checkinteger(L, 1), u = (int)luaL_checkinteger(L, 2);
        luaL_argcheck(L, l <= u, 2, "interval is empty");
        lua_pushnumber(L, (lua_Number)((int)(r * (u - l + 1)) + l));
        break;
    }
    default: return luaL_error(L, "wrong number of arguments");
    }
    return 1;
}

static int math_randomseed(lua_State *L) {
    host(L)->random = (uint64_t)luaL_checkinteger(L, 1);
    return 0;
}

// ---- pcall as Redis 7 gives it to scripts ----

// Like Lua's pcall, except that an error raised by redis.call (a table with `err`) reaches
// the script as its message string, as in Redis 7.
static int script_pcall(lua_State *L) {
    luaL_checkany(L, 1);
    if (lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0) != 0) {
        if (host(L)->restart) return lua_error(L);
        if (lua_istable(L, -1)) {
            lua_getfield(L, -1, "err");
            const char *e = lua_tostring(L, -1);
            // A kill is not the script's to catch: pass it on.
            if (e && strncmp(e, "ERR Script killed by user", 25) == 0) {
                lua_pop(L, 1);
                return lua_error(L);
            }
            if (lua_isstring(L, -1)) lua_replace(L, -2);
            else lua_pop(L, 1);
        }
        lua_pushboolean(L, 0);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushboolean(L, 1);
    lua_insert(L, 1);
    return lua_gettop(L);
}

// ---- protected globals ----

static int globals_newindex(lua_State *L) { return luaL_error(L, "Attempt to modify a readonly table"); }

static int globals_index(lua_State *L) {
    const char *name = lua_tostring(L, 2);
    return luaL_error(L, "Script attempted to access nonexistent global variable '%s'", name ? name : "?");
}

// Records the script line where an error was raised, for the error's trailer.
static int error_handler(lua_State *L) {
    lua_Debug ar;
    for (int level = 0; lua_getstack(L, level, &ar); level++) {
        lua_getinfo(L, "Sl", &ar);
        if (ar.currentline > 0 && (strcmp(ar.source, "@user_script") == 0 || strcmp(ar.source, "@user_function") == 0)) {
            host(L)->line = ar.currentline;
            break;
        }
    }
    return 1;
}

static void set_function(lua_State *L, const char *name, lua_CFunction f) {
    lua_pushcfunction(L, f);
    lua_setfield(L, -2, name);
}

static void set_number(lua_State *L, const char *name, int v) {
    lua_pushnumber(L, v);
    lua_setfield(L, -2, name);
}

// Lets the server stop a script that runs too long (SCRIPT KILL / FUNCTION KILL). The
// error is raised again at every later check, so a script's own pcall cannot swallow it.
static void count_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    BerthLua *h = host(L);
    if (!h->context) return;
    int verdict = h->busy(h->context);
    if (verdict == 0) return;
    lua_createtable(L, 0, 1);
    lua_pushstring(L, verdict == 2 ? "ERR Script killed by user with FUNCTION KILL..."
                                   : "ERR Script killed by user with SCRIPT KILL...");
    lua_setfield(L, -2, "err");
    lua_error(L);
}

// redis.LOG_* on the table at the top of the stack (the run-time and load-time redis tables).
static void set_log_levels(lua_State *L) {
    set_number(L, "LOG_DEBUG", 0);
    set_number(L, "LOG_VERBOSE", 1);
    set_number(L, "LOG_NOTICE", 2);
    set_number(L, "LOG_WARNING", 3);
}

BerthLua *berth_lua_new(BerthLuaCommand command, BerthLuaLog log, BerthLuaBusy busy) {
    BerthLua *h = calloc(1, sizeof *h);
    h->command = command;
    h->log = log;
    h->busy = busy;
    h->resp = 2;
    lua_State *L = luaL_newstate();
    h->L = L;
    lua_pushcfunction(L, luaopen_base); lua_call(L, 0, 0);
    lua_pushcfunction(L, luaopen_table); lua_call(L, 0, 0);
    lua_pushcfunction(L, luaopen_string); lua_call(L, 0, 0);
    lua_pushcfunction(L, luaopen_math); lua_call(L, 0, 0);
    lua_pushlightuserdata(L, h);
    lua_setfield(L, LUA_REGISTRYINDEX, REGISTRY_HOST);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, REGISTRY_SCRIPTS);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, REGISTRY_FUNCTIONS);
    // No file or module loading from scripts.
    const char *removed[] = {"loadfile", "dofile", "load", "require", "module", "print", "gcinfo", NULL};
    for (int i = 0; removed[i]; i++) {
        lua_pushnil(L);
        lua_setglobal(L, removed[i]);
    }
    lua_pushcfunction(L, luaopen_cjson);
    lua_call(L, 0, 1);
    lua_setglobal(L, "cjson");
    lua_pushcfunction(L, luaopen_bit);
    lua_call(L, 0, 1);
    lua_setglobal(L, "bit");
    lua_pushcfunction(L, berth_luaopen_cmsgpack);
    lua_call(L, 0, 1);
    lua_setglobal(L, "cmsgpack");
    lua_pushcfunction(L, berth_luaopen_struct);
    lua_call(L, 0, 1);
    lua_setglobal(L, "struct");
    lua_pushcfunction(L, script_pcall);
    lua_setglobal(L, "pcall");
    lua_sethook(L, count_hook, LUA_MASKCOUNT, 100000);
    lua_getglobal(L, "math");
    set_function(L, "random", math_random);
    set_function(L, "randomseed", math_randomseed);
    lua_pop(L, 1);
    lua_newtable(L);
    set_function(L, "call", redis_call);
    set_function(L, "pcall", redis_pcall);
    set_function(L, "error_reply", redis_error_reply);
    set_function(L, "status_reply", redis_status_reply);
    set_function(L, "sha1hex", redis_sha1hex);
    set_function(L, "log", redis_log);
    set_function(L, "setresp", redis_setresp);
    set_function(L, "set_repl", redis_noop);
    set_function(L, "replicate_commands", redis_true);
    set_log_levels(L);
    set_number(L, "REPL_NONE", 0);
    set_number(L, "REPL_AOF", 1);
    set_number(L, "REPL_SLAVE", 2);
    set_number(L, "REPL_REPLICA", 2);
    set_number(L, "REPL_ALL", 3);
    lua_setglobal(L, "redis");
    // From here on, globals are read-only and unknown ones are errors.
    lua_pushvalue(L, LUA_GLOBALSINDEX);
    lua_newtable(L);
    set_function(L, "__newindex", globals_newindex);
    set_function(L, "__index", globals_index);
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
    return h;
}

void berth_lua_free(BerthLua *h) {
    lua_close(h->L);
    free(h->result.p);
    free(h->call.p);
    free(h);
}

int berth_lua_has(BerthLua *h, const char *sha) {
    lua_getfield(h->L, LUA_REGISTRYINDEX, REGISTRY_SCRIPTS);
    lua_getfield(h->L, -1, sha);
    int found = !lua_isnil(h->L, -1);
    lua_pop(h->L, 2);
    return found;
}

int berth_lua_load(BerthLua *h, const char *sha, const char *body, size_t length) {
    lua_State *L = h->L;
    h->result.n = 0;
    if (berth_lua_has(h, sha)) return 0;
    if (luaL_loadbuffer(L, body, length, "@user_script") != 0) {
        size_t n;
        const char *msg = lua_tolstring(L, -1, &n);
        Buf tmp = {0};
        buf_str(&tmp, "ERR Error compiling script (new function): ");
        buf_append(&tmp, msg, n);
        buf_error(&h->result, tmp.p, tmp.n);
        free(tmp.p);
        lua_pop(L, 1);
        return -1;
    }
    lua_getfield(L, LUA_REGISTRYINDEX, REGISTRY_SCRIPTS);
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, sha);
    lua_pop(L, 2);
    return 0;
}

static void set_array(lua_State *L, const char *name, const char *const *items, const size_t *lens, int n) {
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushlstring(L, items[i], lens[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_pushstring(L, name);
    lua_insert(L, -2);
    lua_rawset(L, LUA_GLOBALSINDEX);  // past the read-only guard
}

// Calls the function under the arguments on the stack (handler, function, nargs values)
// and turns its result or error into the reply; `name` goes into an error's trailer.
static int finish_call(BerthLua *h, int nargs, int resp, const char *name) {
    lua_State *L = h->L;
    Buf *b = &h->result;
    int status = lua_pcall(L, nargs, 1, -(nargs + 2));
    int failed = 0;
    if (h->restart) {
        b->n = 0;
        lua_pop(L, 2);
        h->context = NULL;
        return -2;
    }
    if (status == 0) {
        write_value(L, b, (Protocols){resp, h->resp}, 0);
        failed = b->n > 0 && b->p[0] == '-';
    } else {
        // Uncaught: a redis.call error table or a Lua error string, with Redis's trailer.
        Buf msg = {0};
        if (lua_istable(L, -1)) {
            lua_getfield(L, -1, "err");
            size_t n;
            const char *s = lua_tolstring(L, -1, &n);
            if (s) buf_append(&msg, s, n);
            lua_pop(L, 1);
        } else {
            size_t n;
            const char *s = lua_tolstring(L, -1, &n);
            buf_str(&msg, "ERR ");
            if (s) buf_append(&msg, s, n);
        }
        char trailer[160];
        int t = snprintf(trailer, sizeof trailer, " script: %s, on @%s:%d.", name, h->chunk, h->line);
        buf_append(&msg, trailer, (size_t)t);
        buf_error(b, msg.p, msg.n);
        free(msg.p);
        failed = 1;
    }
    lua_pop(L, 2);  // the result (or error) and the handler
    h->context = NULL;
    lua_gc(L, LUA_GCSTEP, 1);
    return failed ? -1 : 0;
}

static void begin_call(BerthLua *h, void *context, const char *chunk) {
    h->result.n = 0;
    h->context = context;
    h->resp = 2;
    h->line = 0;
    h->random = 0;
    h->restart = 0;
    h->chunk = chunk;
}

static void push_array(lua_State *L, const char *const *items, const size_t *lens, int n) {
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushlstring(L, items[i], lens[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

int berth_lua_run(BerthLua *h, const char *sha, const char *const *keys, const size_t *key_lengths, int nkeys,
                  const char *const *args, const size_t *arg_lengths, int nargs, int resp, void *context) {
    lua_State *L = h->L;
    begin_call(h, context, "user_script");
    set_array(L, "KEYS", keys, key_lengths, nkeys);
    set_array(L, "ARGV", args, arg_lengths, nargs);
    lua_pushcfunction(L, error_handler);
    lua_getfield(L, LUA_REGISTRYINDEX, REGISTRY_SCRIPTS);
    lua_getfield(L, -1, sha);
    lua_remove(L, -2);
    return finish_call(h, 0, resp, sha);
}

int berth_lua_fcall(BerthLua *h, const char *name, const char *const *keys, const size_t *key_lengths, int nkeys,
                    const char *const *args, const size_t *arg_lengths, int nargs, int resp, void *context) {
    lua_State *L = h->L;
    begin_call(h, context, "user_function");
    lua_pushcfunction(L, error_handler);
    lua_getfield(L, LUA_REGISTRYINDEX, REGISTRY_FUNCTIONS);
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 2);
        buf_str(&h->result, "-ERR Function not found\r\n");
        h->context = NULL;
        return -1;
    }
    push_array(L, keys, key_lengths, nkeys);
    push_array(L, args, arg_lengths, nargs);
    return finish_call(h, 2, resp, name);
}

// ---- function libraries ----

static int name_is_valid(const char *s, size_t n) {
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return 0;
    }
    return 1;
}

static const char *FLAG_NAMES[] = {"no-writes", "allow-oom", "allow-stale", "no-cluster", "allow-cross-slot-keys", NULL};

// redis.register_function(name, callback) or redis.register_function{function_name=,
// callback=, flags={...}, description=}, during FUNCTION LOAD only.
static int loader_register(lua_State *L) {
    int flags = 0;
    const char *description = "";
    if (lua_istable(L, 1)) {
        lua_getfield(L, 1, "function_name");
        lua_getfield(L, 1, "callback");
        lua_getfield(L, 1, "flags");
        lua_getfield(L, 1, "description");
        if (lua_isstring(L, -1)) description = lua_tostring(L, -1);
        if (lua_istable(L, -2)) {
            for (int i = 1;; i++) {
                lua_rawgeti(L, -2, i);
                if (lua_isnil(L, -1)) { lua_pop(L, 1); break; }
                const char *f = lua_tostring(L, -1);
                int bit = -1;
                for (int k = 0; f && FLAG_NAMES[k]; k++)
                    if (strcmp(f, FLAG_NAMES[k]) == 0) bit = k;
                lua_pop(L, 1);
                if (bit < 0) return luaL_error(L, "unknown flag given");
                flags |= 1 << bit;
            }
        }
        lua_pop(L, 2);  // flags, description: name and callback stay at -2, -1
    } else {
        lua_settop(L, 2);
    }
    size_t n;
    const char *name = lua_tolstring(L, -2, &n);
    if (!name || !name_is_valid(name, n))
        return luaL_error(L, "Function names can only contain letters, numbers, or underscores(_) and must be at least one character long");
    if (!lua_isfunction(L, -1)) return luaL_error(L, "callback must be a function");
    lua_getfield(L, LUA_REGISTRYINDEX, REGISTRY_PENDING);
    lua_getfield(L, -1, name);
    if (!lua_isnil(L, -1)) return luaL_error(L, "Function already exists in the library");
    lua_pop(L, 1);
    lua_createtable(L, 0, 3);
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "callback");
    lua_pushnumber(L, flags);
    lua_setfield(L, -2, "flags");
    lua_pushstring(L, description);
    lua_setfield(L, -2, "description");
    lua_setfield(L, -2, name);
    return 0;
}

static int loader_missing(lua_State *L) {
    const char *name = lua_tostring(L, 2);
    return luaL_error(L, "Script attempted to access nonexistent global variable '%s'", name ? name : "?");
}

int berth_lua_load_library(BerthLua *h, const char *code, size_t length, int install) {
    lua_State *L = h->L;
    Buf *b = &h->result;
    b->n = 0;
    h->context = NULL;
    h->chunk = "user_function";
    if (luaL_loadbuffer(L, code, length, "@user_function") != 0) {
        Buf tmp = {0};
        buf_str(&tmp, "ERR Error compiling function: ");
        buf_str(&tmp, lua_tostring(L, -1));
        buf_error(b, tmp.p, tmp.n);
        free(tmp.p);
        lua_pop(L, 1);
        return -1;
    }
    // The library's environment: read-only, falling back to the globals; `redis` holds only
    // what a library may use while it loads.
    lua_newtable(L);  // env
    lua_newtable(L);  // load-time redis
    set_function(L, "register_function", loader_register);
    set_function(L, "log", redis_log);
    set_log_levels(L);
    lua_newtable(L);
    set_function(L, "__index", loader_missing);
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "redis");
    lua_newtable(L);  // env's metatable
    lua_pushvalue(L, LUA_GLOBALSINDEX);
    lua_setfield(L, -2, "__index");
    set_function(L, "__newindex", globals_newindex);
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_setfenv(L, -3);  // chunk's environment; env stays below for the switch after loading
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, REGISTRY_PENDING);
    lua_pushcfunction(L, error_handler);
    lua_pushvalue(L, -3);  // the chunk
    int status = lua_pcall(L, 0, 0, -2);
    if (status != 0) {
        Buf tmp = {0};
        buf_str(&tmp, "ERR Error registering functions: ");
        if (lua_istable(L, -1)) {
            lua_getfield(L, -1, "err");
            buf_str(&tmp, lua_tostring(L, -1) ? lua_tostring(L, -1) : "error");
            lua_pop(L, 1);
        } else {
            buf_str(&tmp, "ERR ");
            buf_str(&tmp, lua_tostring(L, -1) ? lua_tostring(L, -1) : "error");
        }
        buf_error(b, tmp.p, tmp.n);
        free(tmp.p);
        lua_settop(L, 0);
        return -1;
    }
    lua_pop(L, 1);  // the handler; env and chunk remain
    // At run time the library's functions see the whole redis API.
    lua_getglobal(L, "redis");
    lua_setfield(L, -2, "redis");  // the key exists, so the read-only guard is not consulted
    lua_getfield(L, LUA_REGISTRYINDEX, REGISTRY_PENDING);
    int count = 0;
    lua_getfield(L, LUA_REGISTRYINDEX, REGISTRY_FUNCTIONS);
    lua_pushnil(L);
    while (lua_next(L, -3) != 0) {  // pending: key at -2, entry at -1
        size_t n;
        const char *name = lua_tolstring(L, -2, &n);
        lua_getfield(L, -1, "flags");
        int flags = (int)lua_tonumber(L, -1);
        lua_pop(L, 1);
        lua_getfield(L, -1, "description");
        const char *description = lua_tostring(L, -1);
        char tmp[32];
        buf_append(b, name, n);
        buf_append(b, "\0", 1);
        int t = snprintf(tmp, sizeof tmp, "%d", flags);
        buf_append(b, tmp, (size_t)t);
        buf_append(b, "\0", 1);
        buf_str(b, description ? description : "");
        buf_append(b, "\0", 1);
        lua_pop(L, 1);
        if (install) {
            lua_getfield(L, -1, "callback");
            lua_setfield(L, -4, name);  // functions[name] = callback
        }
        lua_pop(L, 1);
        count++;
    }
    lua_settop(L, 0);
    if (count == 0) {
        b->n = 0;
        buf_str(b, "-ERR No functions registered\r\n");
        return -1;
    }
    return 0;
}

void berth_lua_flush_functions(BerthLua *h) {
    lua_newtable(h->L);
    lua_setfield(h->L, LUA_REGISTRYINDEX, REGISTRY_FUNCTIONS);
    lua_gc(h->L, LUA_GCCOLLECT, 0);
}

const char *berth_lua_result(BerthLua *h, size_t *length) {
    *length = h->result.n;
    return h->result.p;
}

void berth_lua_flush(BerthLua *h) {
    lua_newtable(h->L);
    lua_setfield(h->L, LUA_REGISTRYINDEX, REGISTRY_SCRIPTS);
    lua_gc(h->L, LUA_GCCOLLECT, 0);
}
