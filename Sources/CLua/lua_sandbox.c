// Berth's Lua host: the sandbox that keeps one script from changing what the next one
// sees, and the guards over known weaknesses of Lua 5.1 and the libraries Debian ships.
//
// Redis and Valkey patch their copy of Lua with read-only tables. Berth links Debian's
// unmodified Lua 5.1, so it builds the same guarantee from what the language offers:
//
// - Every library table (string, table, math, coroutine, os, redis/server, cjson, bit,
//   cmsgpack, struct) and the globals table itself are reached through a *proxy*: an empty
//   table whose metatable reads from the real one (__index) and refuses every write
//   (__newindex). Writes to existing keys therefore also reach __newindex, which is what a
//   metatable on the real table alone could not give.
// - The proxies are listed in a weak registry table (proxy -> real table). The functions
//   that write around metatables (rawset, setmetatable, table.insert/remove/sort, setfenv
//   of level 0) refuse a listed target; the ones that read around them (rawget, next,
//   pairs, ipairs) look through a proxy to its table, so iterating `redis` still works.
// - Metatables a script can get hold of (the globals' and the string type's) are given a
//   __metatable field holding a read-only proxy, so getmetatable hands out only that.
//
// The guards, each named for what it prevents:
// - bit.tohex with INT32_MIN digits (CVE-2024-31449: lua-bitop writes past its buffer);
// - unpack over a range wider than an int (CVE-2025-46817: Lua 5.1's count overflows);
// - cjson.encode of strings too large for lua-cjson's int-sized buffer (CVE-2022-24834);
// - binary chunks (EVAL bodies, loadstring): Lua 5.1 runs bytecode unverified, so a body
//   that starts with the bytecode signature is parsed as text and fails to compile, as in
//   Redis;
// - chunk names stay referenced from the registry, so the parser never holds the only
//   reference to one while the collector runs (the CVE-2025-49844 use-after-free).
#include "lua_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BL_REGISTRY_READONLY "berth.readonly"

static int refuse_write(lua_State *L) { return luaL_error(L, "Attempt to modify a readonly table"); }

// The table a proxy stands for, or nil when `index` holds no proxy.
static void push_protected(lua_State *L, int index) {
    index = index < 0 ? lua_gettop(L) + index + 1 : index;
    lua_getfield(L, LUA_REGISTRYINDEX, BL_REGISTRY_READONLY);
    lua_pushvalue(L, index);
    lua_rawget(L, -2);
    lua_remove(L, -2);
}

static int is_protected(lua_State *L, int index) {
    push_protected(L, index);
    int found = !lua_isnil(L, -1);
    lua_pop(L, 1);
    return found;
}

// Replaces the value at `index` by the proxy's table when it is a proxy.
static void see_through(lua_State *L, int index) {
    push_protected(L, index);
    if (!lua_isnil(L, -1)) lua_replace(L, index);
    else lua_pop(L, 1);
}

// Replaces the table at the top of the stack by a read-only proxy of it.
void bl_make_readonly(lua_State *L) {
    int real = lua_gettop(L);
    lua_newtable(L);  // proxy
    lua_newtable(L);  // its metatable
    lua_pushvalue(L, real);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, refuse_write);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_getfield(L, LUA_REGISTRYINDEX, BL_REGISTRY_READONLY);
    lua_pushvalue(L, -2);
    lua_pushvalue(L, real);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    lua_replace(L, real);
}

// ---- functions that write or read around metatables ----

// The wrapped function is upvalue 1; its first argument is the table it works on.
static int refusing_protected_target(lua_State *L) {
    if (lua_gettop(L) >= 1 && is_protected(L, 1)) return refuse_write(L);
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
}

// The wrapped function is upvalue 1; a proxy as first argument is replaced by its table.
static int seeing_through_proxies(lua_State *L) {
    int n = lua_gettop(L);
    if (n >= 1) see_through(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
}

static int safe_setmetatable(lua_State *L) {
    if (is_protected(L, 1)) return refuse_write(L);
    return refusing_protected_target(L);
}

// setfenv(0, t) would replace the globals of every later script.
static int safe_setfenv(lua_State *L) {
    if (lua_type(L, 1) == LUA_TNUMBER && lua_tonumber(L, 1) == 0) return refuse_write(L);
    return refusing_protected_target(L);
}

// getfenv(f) of a function made before the sealing (the C library functions) would hand
// out the real globals table: hand out its proxy.
static int safe_getfenv(lua_State *L) {
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, BL_REGISTRY_REAL_GLOBALS);
    if (lua_rawequal(L, -1, -2)) {
        lua_pop(L, 2);
        lua_pushvalue(L, LUA_GLOBALSINDEX);
    } else {
        lua_pop(L, 1);
    }
    return 1;
}

static int missing_global(lua_State *L) {
    const char *name = lua_tostring(L, 2);
    return luaL_error(L, "Script attempted to access nonexistent global variable '%s'", name ? name : "?");
}

// pairs(t): next (the wrapped one, upvalue 1), t, nil.
static int safe_pairs(lua_State *L) {
    luaL_checkany(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

static void wrap_global(lua_State *L, int real_globals, const char *name, lua_CFunction wrapper) {
    lua_getfield(L, real_globals, name);
    lua_pushcclosure(L, wrapper, 1);
    lua_setfield(L, real_globals, name);
}

static void wrap_field(lua_State *L, int table, const char *name, lua_CFunction wrapper) {
    lua_getfield(L, table, name);
    lua_pushcclosure(L, wrapper, 1);
    lua_setfield(L, table, name);
}

// ---- guards ----

// LuaBitOp's conversion of a number to 32 bits (modulo 2^32 of the rounded value).
static uint32_t to_bits(lua_State *L, int index) {
    union {
        lua_Number n;
        uint64_t b;
    } v;
    v.n = luaL_checknumber(L, index) + 6755399441055744.0;  // 2^52 + 2^51
    return (uint32_t)v.b;
}

static int bit_tohex(lua_State *L) {
    uint32_t b = to_bits(L, 1);
    int32_t n = lua_isnone(L, 2) ? 8 : (int32_t)to_bits(L, 2);
    const char *digits = "0123456789abcdef";
    if (n < 0) {
        n = n == INT32_MIN ? INT32_MAX : -n;
        digits = "0123456789ABCDEF";
    }
    if (n > 8) n = 8;
    char out[8];
    for (int i = n - 1; i >= 0; i--) {
        out[i] = digits[b & 15];
        b >>= 4;
    }
    lua_pushlstring(L, out, (size_t)n);
    return 1;
}

static int safe_unpack(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    long long first = luaL_optinteger(L, 2, 1);
    long long last = lua_isnoneornil(L, 3) ? (long long)lua_objlen(L, 1) : luaL_checkinteger(L, 3);
    if (first > last) return 0;
    long long count = last - first + 1;
    if (count >= INT_MAX || !lua_checkstack(L, (int)count)) return luaL_error(L, "too many results to unpack");
    for (long long i = first; i <= last; i++) lua_rawgeti(L, 1, (int)i);
    return (int)count;
}

// lua-cjson sizes its buffer as an int and reserves six bytes per string byte for
// escapes: strings past this many bytes (or a value that adds up to more) overflow it.
#define CJSON_MAX_INPUT ((size_t)(INT_MAX / 6 - 64))

static size_t encoded_size_bound(lua_State *L, int index, int depth) {
    if (depth > 1000) return 0;  // cjson refuses the nesting itself
    switch (lua_type(L, index)) {
    case LUA_TSTRING: return lua_objlen(L, index) + 2;
    case LUA_TTABLE: {
        size_t total = 2;
        lua_pushnil(L);
        while (lua_next(L, index) != 0) {
            int top = lua_gettop(L);
            total += encoded_size_bound(L, top - 1, depth + 1) + encoded_size_bound(L, top, depth + 1) + 2;
            lua_pop(L, 1);
            if (total > CJSON_MAX_INPUT) {
                lua_pop(L, 1);
                return total;
            }
        }
        return total;
    }
    default: return 32;
    }
}

static int safe_cjson_encode(lua_State *L) {
    if (lua_gettop(L) >= 1 && encoded_size_bound(L, 1, 0) > CJSON_MAX_INPUT)
        return luaL_error(L, "Cannot serialise: value too large to encode as JSON");
    return refusing_protected_target(L);  // calls the original with the same arguments
}

// loadstring(s): text only, as the chunk of an EVAL.
static int safe_loadstring(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    const char *name = luaL_optstring(L, 2, s);
    if (n > 0 && s[0] == LUA_SIGNATURE[0]) {
        lua_pushnil(L);
        lua_pushstring(L, "binary chunks are not loaded");
        return 2;
    }
    if (luaL_loadbuffer(L, s, n, name) == 0) return 1;
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
}

int bl_load_text(lua_State *L, const char *body, size_t length, const char *name) {
    if (length > 0 && body[0] == LUA_SIGNATURE[0]) {
        // A leading space keeps the parser in text mode; it changes no line number.
        char *copy = malloc(length + 1);
        if (!copy) return LUA_ERRMEM;
        copy[0] = ' ';
        memcpy(copy + 1, body, length);
        int status = luaL_loadbuffer(L, copy, length + 1, name);
        free(copy);
        return status;
    }
    return luaL_loadbuffer(L, body, length, name);
}

static int os_clock(lua_State *L) {
    lua_pushnumber(L, (lua_Number)clock() / (lua_Number)CLOCKS_PER_SEC);
    return 1;
}

// ---- sealing ----

void bl_seal_environment(lua_State *L) {
    lua_newtable(L);  // proxy -> table, weak both ways
    lua_newtable(L);
    lua_pushstring(L, "kv");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, BL_REGISTRY_READONLY);
    // The chunk names scripts are parsed under, kept alive for good.
    lua_pushstring(L, "@user_script");
    lua_setfield(L, LUA_REGISTRYINDEX, "berth.chunk.script");
    lua_pushstring(L, "@user_function");
    lua_setfield(L, LUA_REGISTRYINDEX, "berth.chunk.function");

    lua_pushvalue(L, LUA_GLOBALSINDEX);
    int g = lua_gettop(L);
    lua_newtable(L);  // os: only clock, as Redis and Valkey give
    bl_set_function(L, "clock", os_clock);
    lua_setfield(L, g, "os");
    lua_pushcfunction(L, safe_unpack);
    lua_setfield(L, g, "unpack");
    lua_pushcfunction(L, safe_loadstring);
    lua_setfield(L, g, "loadstring");
    // newproxy makes userdata whose __gc runs at the collector's whim: no finalizers from
    // scripts (the CVE-2024-46981 class).
    lua_pushnil(L);
    lua_setfield(L, g, "newproxy");
    lua_getfield(L, g, "bit");
    bl_set_function(L, "tohex", bit_tohex);
    lua_pop(L, 1);
    lua_getfield(L, g, "cjson");
    wrap_field(L, lua_gettop(L), "encode", safe_cjson_encode);
    lua_pop(L, 1);
    lua_getfield(L, g, "table");
    int t = lua_gettop(L);
    wrap_field(L, t, "insert", refusing_protected_target);
    wrap_field(L, t, "remove", refusing_protected_target);
    wrap_field(L, t, "sort", refusing_protected_target);
    lua_pop(L, 1);
    wrap_global(L, g, "rawset", refusing_protected_target);
    wrap_global(L, g, "setmetatable", safe_setmetatable);
    wrap_global(L, g, "setfenv", safe_setfenv);
    wrap_global(L, g, "getfenv", safe_getfenv);
    wrap_global(L, g, "rawget", seeing_through_proxies);
    wrap_global(L, g, "ipairs", seeing_through_proxies);
    wrap_global(L, g, "next", seeing_through_proxies);
    lua_getfield(L, g, "next");
    lua_pushcclosure(L, safe_pairs, 1);
    lua_setfield(L, g, "pairs");

    // The string type's metatable: getmetatable("") hands out a read-only view of it.
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushvalue(L, -1);
    bl_make_readonly(L);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);

    const char *libraries[] = {"string", "table", "math", "coroutine", "os", "redis", "cjson", "bit", "cmsgpack",
                               "struct", NULL};
    for (int i = 0; libraries[i]; i++) {
        lua_getfield(L, g, libraries[i]);
        if (lua_isnil(L, -1)) { lua_pop(L, 1); continue; }
        bl_make_readonly(L);
        lua_setfield(L, g, libraries[i]);
    }
    lua_getfield(L, g, "redis");
    lua_setfield(L, g, "server");  // Valkey's name for the same table

    // The globals: the real table keeps its metatable (unknown names are errors); scripts
    // get a proxy of it as their environment and as _G.
    lua_pushvalue(L, g);
    bl_make_readonly(L);
    int proxy = lua_gettop(L);
    lua_getmetatable(L, proxy);  // the proxy's metatable: hand out a read-only view
    lua_pushvalue(L, -1);
    bl_make_readonly(L);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
    // The real table's own metatable: unknown names are errors, new ones refused.
    lua_newtable(L);
    bl_set_function(L, "__newindex", refuse_write);
    bl_set_function(L, "__index", missing_global);
    lua_pushvalue(L, -1);
    bl_make_readonly(L);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, g);
    lua_pushvalue(L, g);
    lua_setfield(L, LUA_REGISTRYINDEX, BL_REGISTRY_REAL_GLOBALS);
    lua_pushliteral(L, "_G");
    lua_pushvalue(L, proxy);
    lua_rawset(L, g);
    lua_pushvalue(L, proxy);
    lua_replace(L, LUA_GLOBALSINDEX);
    lua_settop(L, g - 1);
}
