// Berth's Lua host: result buffers, and the conversions between command replies and Lua
// values in both directions, as Redis makes them (RESP2, and RESP3 after redis.setresp).
#include "lua_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- buffers ----

void bl_buf_append(Buf *b, const char *s, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        b->p = realloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

void bl_buf_str(Buf *b, const char *s) { bl_buf_append(b, s, strlen(s)); }

void bl_buf_fmt(Buf *b, const char *prefix, long long v) {
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%s%lld\r\n", prefix, v);
    bl_buf_append(b, tmp, (size_t)n);
}

void berth_lua_reply_append(void *out, const char *bytes, size_t length) { bl_buf_append(out, bytes, length); }

// An error reply: newlines would break the protocol, so they become spaces.
void bl_buf_error(Buf *b, const char *msg, size_t n) {
    bl_buf_append(b, "-", 1);
    size_t start = b->n;
    bl_buf_append(b, msg, n);
    for (size_t i = start; i < b->n; i++)
        if (b->p[i] == '\r' || b->p[i] == '\n') b->p[i] = ' ';
    bl_buf_append(b, "\r\n", 2);
}

BerthLua *bl_host(lua_State *L) {
    lua_getfield(L, LUA_REGISTRYINDEX, BL_REGISTRY_HOST);
    BerthLua *h = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return h;
}

// ---- RESP2 reply -> Lua value ----

const char *bl_parse_reply(lua_State *L, const char *p, const char *end);

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
        p = bl_parse_reply(L, p, end);
        if (set) lua_pushboolean(L, 1);
        else p = bl_parse_reply(L, p, end);
        if (lua_isnil(L, -2)) lua_pop(L, 2);  // a null key cannot index a table
        else lua_settable(L, -3);
    }
    wrap_in_table(L, set ? "set" : "map");
    return p;
}

const char *bl_parse_reply(lua_State *L, const char *p, const char *end) {
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
        return bl_parse_reply(L, p, end);
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
            p = bl_parse_reply(L, p, end);
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


static void write_bulk(Buf *b, const char *s, size_t n) {
    bl_buf_fmt(b, "$", (long long)n);
    bl_buf_append(b, s, n);
    bl_buf_append(b, "\r\n", 2);
}

static void write_null(Buf *b, Protocols resp) { bl_buf_str(b, resp.client == 3 ? "_\r\n" : "$-1\r\n"); }

// A line-protocol value must not carry CR or LF.
static void write_line(Buf *b, const char *prefix, const char *s, size_t n) {
    bl_buf_str(b, prefix);
    size_t start = b->n;
    bl_buf_append(b, s, n);
    for (size_t i = start; i < b->n; i++)
        if (b->p[i] == '\r' || b->p[i] == '\n') b->p[i] = ' ';
    bl_buf_append(b, "\r\n", 2);
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

void bl_write_value(lua_State *L, Buf *b, Protocols resp, int depth);

// {map = t} / {set = t}: every pair of t (keys only for a set).
static void write_pairs(lua_State *L, Buf *b, Protocols resp, int depth, int set) {
    long long n = 0;
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lua_pop(L, 1);
        n++;
    }
    if (set) bl_buf_fmt(b, resp.client == 3 ? "~" : "*", n);
    else bl_buf_fmt(b, resp.client == 3 ? "%" : "*", resp.client == 3 ? n : 2 * n);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lua_pushvalue(L, -2);
        bl_write_value(L, b, resp, depth + 1);
        lua_pop(L, 1);
        if (!set) bl_write_value(L, b, resp, depth + 1);
        lua_pop(L, 1);
    }
}

static void write_table(lua_State *L, Buf *b, Protocols resp, int depth) {
    if (get_field(L, "err", LUA_TSTRING)) {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        bl_buf_error(b, s, n);
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
                bl_buf_fmt(b, "=", (long long)sn + 4);
                bl_buf_append(b, head, 3);
                bl_buf_append(b, ":", 1);
                bl_buf_append(b, s, sn);
                bl_buf_append(b, "\r\n", 2);
            } else {
                write_bulk(b, s, sn);
            }
            lua_pop(L, 3);
            return;
        }
        lua_pop(L, 3);
    }
    if (depth > 1000 || !lua_checkstack(L, 4)) {
        bl_buf_str(b, "-ERR reached lua stack limit\r\n");
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
    bl_buf_fmt(b, "*", n);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        bl_write_value(L, b, resp, depth + 1);
        lua_pop(L, 1);
    }
}

// Writes the value at the top of the stack (leaving it there) as a reply.
void bl_write_value(lua_State *L, Buf *b, Protocols resp, int depth) {
    switch (lua_type(L, -1)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        write_bulk(b, s, n);
        break;
    }
    case LUA_TNUMBER: bl_buf_fmt(b, ":", (long long)lua_tonumber(L, -1)); break;
    case LUA_TBOOLEAN:
        if (resp.script == 3) {
            int v = lua_toboolean(L, -1);
            if (resp.client == 3) bl_buf_str(b, v ? "#t\r\n" : "#f\r\n");
            else bl_buf_str(b, v ? ":1\r\n" : ":0\r\n");
        } else if (lua_toboolean(L, -1)) {
            bl_buf_str(b, ":1\r\n");
        } else {
            write_null(b, resp);
        }
        break;
    case LUA_TTABLE: write_table(L, b, resp, depth); break;
    default: write_null(b, resp);
    }
}
