/*
 * The `cmsgpack` library Redis gives scripts: MessagePack in and out of Lua 5.1 values.
 *
 * Encoding picks the smallest MessagePack form for each value, as Redis's copy does:
 * numbers equal to a 64-bit integer become integers, other numbers a float32 when that
 * is exact and a float64 otherwise; strings use fixstr/str8/str16/str32; a table whose
 * keys are exactly 1..n is an array, any other table a map; tables nested deeper than
 * MAX_NESTING, functions and userdata become nil. Decoding reads every MessagePack type
 * except bin and ext (which Redis's copy refuses as bad data too): strings become Lua
 * strings, integers and floats numbers.
 * pack() takes any number of values and concatenates their encodings; unpack() returns
 * every value in the input, unpack_one()/unpack_limit() a bounded number after a start
 * offset, preceded by the offset of the next value (or -1 at the end).
 */
#include <lua5.1/lauxlib.h>
#include <lua5.1/lua.h>

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_NESTING = 16 };

// ---- encoding ----

// The output grows in a malloc'd block owned by a userdata on the Lua stack, so a Lua
// error in the middle of encoding frees it through __gc instead of leaking it.
// (luaL_Buffer cannot be used: it keeps pieces on the stack, where tables being walked
// also live.)
typedef struct {
    char *p;
    size_t n, cap;
} Out;

static int out_gc(lua_State *L) {
    Out *o = lua_touserdata(L, 1);
    free(o->p);
    o->p = NULL;
    return 0;
}

static Out *out_new(lua_State *L) {
    Out *o = lua_newuserdata(L, sizeof *o);
    memset(o, 0, sizeof *o);
    if (luaL_newmetatable(L, "berth.cmsgpack.out")) {
        lua_pushcfunction(L, out_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return o;
}

static void out_bytes(lua_State *L, Out *o, const void *bytes, size_t n) {
    if (o->n + n > o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        while (cap < o->n + n) cap *= 2;
        char *p = realloc(o->p, cap);
        if (!p) luaL_error(L, "cmsgpack: out of memory");
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->n, bytes, n);
    o->n += n;
}

typedef struct {
    lua_State *L;
    Out *out;
} Encoder;

static void put_byte(Encoder *e, unsigned char c) { out_bytes(e->L, e->out, &c, 1); }

static void put_big_endian(Encoder *e, unsigned char tag, uint64_t v, int bytes) {
    unsigned char tmp[9];
    tmp[0] = tag;
    for (int i = 0; i < bytes; i++) tmp[1 + i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
    out_bytes(e->L, e->out, tmp, (size_t)bytes + 1);
}

static void encode_integer(Encoder *e, int64_t n) {
    if (n >= 0) {
        uint64_t u = (uint64_t)n;
        if (u <= 0x7f) put_byte(e, (unsigned char)u);
        else if (u <= 0xff) put_big_endian(e, 0xcc, u, 1);
        else if (u <= 0xffff) put_big_endian(e, 0xcd, u, 2);
        else if (u <= 0xffffffffULL) put_big_endian(e, 0xce, u, 4);
        else put_big_endian(e, 0xcf, u, 8);
    } else {
        uint64_t u = (uint64_t)n;
        if (n >= -32) put_byte(e, (unsigned char)(u & 0xff));
        else if (n >= -128) put_big_endian(e, 0xd0, u & 0xff, 1);
        else if (n >= -32768) put_big_endian(e, 0xd1, u & 0xffff, 2);
        else if (n >= INT32_MIN) put_big_endian(e, 0xd2, u & 0xffffffffULL, 4);
        else put_big_endian(e, 0xd3, u, 8);
    }
}

static void encode_number(Encoder *e, lua_Number n) {
    if (n >= -9223372036854775808.0 && n < 9223372036854775808.0 && (lua_Number)(int64_t)n == n) {
        encode_integer(e, (int64_t)n);
        return;
    }
    float f = (float)n;
    if ((lua_Number)f == n || isnan(n)) {
        uint32_t bits;
        memcpy(&bits, &f, 4);
        put_big_endian(e, 0xca, bits, 4);
    } else {
        uint64_t bits;
        memcpy(&bits, &n, 8);
        put_big_endian(e, 0xcb, bits, 8);
    }
}

static void encode_string(Encoder *e, const char *s, size_t n) {
    if (n < 32) put_byte(e, (unsigned char)(0xa0 | n));
    else if (n <= 0xff) put_big_endian(e, 0xd9, n, 1);
    else if (n <= 0xffff) put_big_endian(e, 0xda, n, 2);
    else put_big_endian(e, 0xdb, n, 4);
    out_bytes(e->L, e->out, s, n);
}

static void encode_length(Encoder *e, size_t n, unsigned char fix, unsigned char tag16) {
    if (n < 16) put_byte(e, (unsigned char)(fix | n));
    else if (n <= 0xffff) put_big_endian(e, tag16, n, 2);
    else put_big_endian(e, (unsigned char)(tag16 + 1), n, 4);
}

// True when the table at `index` has exactly the keys 1..n (an empty table counts).
static int is_array(lua_State *L, int index, size_t *length) {
    size_t count = 0;
    lua_Number max = 0;
    lua_pushnil(L);
    while (lua_next(L, index)) {
        lua_pop(L, 1);
        lua_Number k;
        if (lua_type(L, -1) != LUA_TNUMBER || (k = lua_tonumber(L, -1)) <= 0 || k != floor(k)) {
            lua_pop(L, 1);
            return 0;
        }
        if (k > max) max = k;
        count++;
    }
    *length = count;
    return max == (lua_Number)count;
}

static void encode_value(Encoder *e, int level);

// Encodes the table at the top of the stack (and leaves it there).
static void encode_table(Encoder *e, int level) {
    lua_State *L = e->L;
    luaL_checkstack(L, 4, "cmsgpack: table nested too deeply");
    int t = lua_gettop(L);
    size_t n;
    if (is_array(L, t, &n)) {
        encode_length(e, n, 0x90, 0xdc);
        for (size_t i = 1; i <= n; i++) {
            lua_rawgeti(L, t, (int)i);
            encode_value(e, level + 1);
        }
        return;
    }
    size_t pairs = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        pairs++;
    }
    encode_length(e, pairs, 0x80, 0xde);
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pushvalue(L, -2);        // key, value, key
        encode_value(e, level + 1);  // the key's copy
        encode_value(e, level + 1);  // the value; the key stays for lua_next
    }
}

// Encodes and pops the value at the top of the stack.
static void encode_value(Encoder *e, int level) {
    lua_State *L = e->L;
    switch (lua_type(L, -1)) {
    case LUA_TBOOLEAN: put_byte(e, lua_toboolean(L, -1) ? 0xc3 : 0xc2); break;
    case LUA_TNUMBER: encode_number(e, lua_tonumber(L, -1)); break;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        encode_string(e, s, n);
        break;
    }
    case LUA_TTABLE:
        if (level < MAX_NESTING) encode_table(e, level);
        else put_byte(e, 0xc0);
        break;
    default: put_byte(e, 0xc0);
    }
    lua_pop(L, 1);
}

static int cmsgpack_pack(lua_State *L) {
    int argc = lua_gettop(L);
    if (argc == 0) return luaL_argerror(L, 0, "MessagePack pack needs input.");
    Encoder e = {L, out_new(L)};
    for (int i = 1; i <= argc; i++) {
        lua_pushvalue(L, i);
        encode_value(&e, 0);
    }
    lua_pushlstring(L, e.out->p ? e.out->p : "", e.out->n);
    return 1;
}

// ---- decoding ----

typedef struct {
    const unsigned char *p;
    size_t left;
    int error;  // 0, MISSING or BAD
} Cursor;

enum { MISSING = 1, BAD = 2 };

static int need(Cursor *c, size_t n) {
    if (c->left < n) {
        c->error = MISSING;
        return 0;
    }
    return 1;
}

static uint64_t read_big_endian(Cursor *c, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v = (v << 8) | c->p[i];
    c->p += bytes;
    c->left -= (size_t)bytes;
    return v;
}

static void decode_value(lua_State *L, Cursor *c);

static void decode_string(lua_State *L, Cursor *c, size_t n) {
    if (!need(c, n)) return;
    lua_pushlstring(L, (const char *)c->p, n);
    c->p += n;
    c->left -= n;
}

static void decode_array(lua_State *L, Cursor *c, size_t n) {
    luaL_checkstack(L, 4, "cmsgpack: input nested too deeply");
    lua_newtable(L);
    for (size_t i = 1; i <= n && !c->error; i++) {
        decode_value(L, c);
        if (c->error) return;
        lua_rawseti(L, -2, (int)i);
    }
}

static void decode_map(lua_State *L, Cursor *c, size_t n) {
    luaL_checkstack(L, 4, "cmsgpack: input nested too deeply");
    lua_newtable(L);
    for (size_t i = 0; i < n && !c->error; i++) {
        decode_value(L, c);
        if (c->error) return;
        decode_value(L, c);
        if (c->error) return;
        if (lua_isnil(L, -2)) lua_pop(L, 2);  // a nil key cannot be stored
        else lua_settable(L, -3);
    }
}

// Pushes the next value, or sets c->error (and may leave partial values on the stack).
static void decode_value(lua_State *L, Cursor *c) {
    if (!need(c, 1)) return;
    unsigned char tag = *c->p++;
    c->left--;
    if (tag <= 0x7f) { lua_pushnumber(L, tag); return; }
    if (tag >= 0xe0) { lua_pushnumber(L, (int8_t)tag); return; }
    if ((tag & 0xe0) == 0xa0) { decode_string(L, c, tag & 0x1f); return; }
    if ((tag & 0xf0) == 0x90) { decode_array(L, c, tag & 0x0f); return; }
    if ((tag & 0xf0) == 0x80) { decode_map(L, c, tag & 0x0f); return; }
    static const int width[] = {
        [0xcc] = 1, [0xcd] = 2, [0xce] = 4, [0xcf] = 8, [0xd0] = 1, [0xd1] = 2, [0xd2] = 4, [0xd3] = 8,
        [0xca] = 4, [0xcb] = 8, [0xd9] = 1, [0xda] = 2, [0xdb] = 4,
        [0xdc] = 2, [0xdd] = 4, [0xde] = 2, [0xdf] = 4,
    };
    switch (tag) {
    case 0xc0: lua_pushnil(L); return;
    case 0xc2: lua_pushboolean(L, 0); return;
    case 0xc3: lua_pushboolean(L, 1); return;
    default: break;
    }
    int w = tag < sizeof width / sizeof width[0] ? width[tag] : 0;
    if (w == 0) {
        c->error = BAD;
        return;
    }
    if (!need(c, (size_t)w)) return;
    uint64_t v = read_big_endian(c, w);
    switch (tag) {
    case 0xcc: case 0xcd: case 0xce: case 0xcf: lua_pushnumber(L, (lua_Number)v); return;
    case 0xd0: lua_pushnumber(L, (int8_t)v); return;
    case 0xd1: lua_pushnumber(L, (int16_t)v); return;
    case 0xd2: lua_pushnumber(L, (int32_t)v); return;
    case 0xd3: lua_pushnumber(L, (lua_Number)(int64_t)v); return;
    case 0xca: {
        uint32_t bits = (uint32_t)v;
        float f;
        memcpy(&f, &bits, 4);
        lua_pushnumber(L, f);
        return;
    }
    case 0xcb: {
        double d;
        memcpy(&d, &v, 8);
        lua_pushnumber(L, d);
        return;
    }
    case 0xdc: case 0xdd: decode_array(L, c, (size_t)v); return;
    case 0xde: case 0xdf: decode_map(L, c, (size_t)v); return;
    default: decode_string(L, c, (size_t)v); return;  // str8/16/32
    }
}

// Decodes up to `limit` values (0: all) from byte `offset` of argument 1. With a limit
// or offset, the offset of the next value (-1 when the input is used up) comes first.
static int unpack_values(lua_State *L, int limit, int offset) {
    size_t length;
    const char *s = luaL_checklstring(L, 1, &length);
    lua_settop(L, 1);
    int everything = limit == 0 && offset == 0;
    if (offset < 0 || limit < 0)
        return luaL_error(L, "Invalid request to unpack with offset of %d and limit of %d.", offset, (int)length);
    if ((size_t)offset > length)
        return luaL_error(L, "Start offset %d greater than input length %d.", offset, (int)length);
    if (everything) limit = INT_MAX;
    Cursor c = {(const unsigned char *)s + offset, length - (size_t)offset, 0};
    int count = 0;
    for (; c.left > 0 && count < limit; count++) {
        luaL_checkstack(L, 2, "cmsgpack: too many values");
        decode_value(L, &c);
        if (c.error == MISSING) return luaL_error(L, "Missing bytes in input.");
        if (c.error == BAD) return luaL_error(L, "Bad data format in input.");
    }
    if (everything) return count;
    lua_pushinteger(L, c.left == 0 ? -1 : (lua_Integer)(length - c.left));
    lua_insert(L, 2);
    return count + 1;
}

static int cmsgpack_unpack(lua_State *L) { return unpack_values(L, 0, 0); }

static int cmsgpack_unpack_one(lua_State *L) {
    int offset = (int)luaL_optinteger(L, 2, 0);
    return unpack_values(L, 1, offset);
}

static int cmsgpack_unpack_limit(lua_State *L) {
    int limit = (int)luaL_checkinteger(L, 2);
    int offset = (int)luaL_optinteger(L, 3, 0);
    return unpack_values(L, limit, offset);
}

int berth_luaopen_cmsgpack(lua_State *L) {
    static const luaL_Reg functions[] = {
        {"pack", cmsgpack_pack},
        {"unpack", cmsgpack_unpack},
        {"unpack_one", cmsgpack_unpack_one},
        {"unpack_limit", cmsgpack_unpack_limit},
        {NULL, NULL},
    };
    lua_newtable(L);
    for (const luaL_Reg *f = functions; f->name; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, -2, f->name);
    }
    lua_pushstring(L, "cmsgpack");
    lua_setfield(L, -2, "_NAME");
    lua_pushstring(L, "lua-cmsgpack 0.4.0");
    lua_setfield(L, -2, "_VERSION");
    return 1;
}
