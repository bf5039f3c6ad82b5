// Berth's Lua host: FUNCTION LOAD's libraries (`#!lua name=<lib>`), whose code runs in an
// environment of its own to register functions with redis.register_function.
#include "lua_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

// Raises {err = "ERR <api>.<message>"}-style errors as Redis's luaPushError does: no script
// position, the message names the API the way the script reached it (`api` is "redis" or
// "server", the closure's upvalue), so that both Redis's and Valkey's wording hold.
static int register_error(lua_State *L, const char *format) {
    const char *api = lua_tostring(L, lua_upvalueindex(1));
    lua_createtable(L, 0, 1);
    lua_pushstring(L, "ERR ");
    lua_pushfstring(L, format, api, api);
    lua_concat(L, 2);
    lua_setfield(L, -2, "err");
    return lua_error(L);
}

static int plain_error(lua_State *L, const char *message) {
    lua_createtable(L, 0, 1);
    lua_pushfstring(L, "ERR %s", message);
    lua_setfield(L, -2, "err");
    return lua_error(L);
}

// The flags table at `index`; -1 for an unknown flag.
static int read_flags(lua_State *L, int index) {
    int flags = 0;
    for (int i = 1;; i++) {
        lua_rawgeti(L, index, i);
        if (lua_isnil(L, -1)) { lua_pop(L, 1); return flags; }
        const char *f = lua_isstring(L, -1) ? lua_tostring(L, -1) : NULL;
        int bit = -1;
        for (int k = 0; f && FLAG_NAMES[k]; k++)
            if (strcmp(f, FLAG_NAMES[k]) == 0) bit = k;
        lua_pop(L, 1);
        if (bit < 0) return -1;
        flags |= 1 << bit;
    }
}

// register_function{function_name=, callback=, flags={...}, description=}: leaves name at
// 2, callback at 3, description at 4 and returns the flags.
static int read_named_arguments(lua_State *L) {
    if (!lua_istable(L, 1))
        return register_error(L, "calling %s.register_function with a single argument is only applicable to Lua table (representing named arguments).");
    lua_settop(L, 1);
    lua_pushnil(L);  // name
    lua_pushnil(L);  // callback
    lua_pushnil(L);  // description
    int flags = 0;
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {  // key at 5, value at 6
        if (lua_type(L, 5) != LUA_TSTRING)
            return register_error(L, "named argument key given to %s.register_function is not a string");
        const char *key = lua_tostring(L, 5);
        if (strcasecmp(key, "function_name") == 0) {
            if (!lua_isstring(L, 6)) return register_error(L, "function_name argument given to %s.register_function must be a string");
            lua_pushvalue(L, 6);
            lua_replace(L, 2);
        } else if (strcasecmp(key, "description") == 0) {
            if (!lua_isstring(L, 6)) return register_error(L, "description argument given to %s.register_function must be a string");
            lua_pushvalue(L, 6);
            lua_replace(L, 4);
        } else if (strcasecmp(key, "callback") == 0) {
            if (!lua_isfunction(L, 6)) return register_error(L, "callback argument given to %s.register_function must be a function");
            lua_pushvalue(L, 6);
            lua_replace(L, 3);
        } else if (strcasecmp(key, "flags") == 0) {
            if (!lua_istable(L, 6))
                return register_error(L, "flags argument to %s.register_function must be a table representing function flags");
            flags = read_flags(L, 6);
            if (flags < 0) return plain_error(L, "unknown flag given");
        } else {
            return register_error(L, "unknown argument given to %s.register_function");
        }
        lua_pop(L, 1);
    }
    if (lua_isnil(L, 2)) return register_error(L, "%s.register_function must get a function name argument");
    if (lua_isnil(L, 3)) return register_error(L, "%s.register_function must get a callback argument");
    return flags;
}

// register_function(name, callback): name at 2, callback at 3, no description.
static void read_positional_arguments(lua_State *L) {
    if (!lua_isstring(L, 1)) register_error(L, "first argument to %s.register_function must be a string");
    if (!lua_isfunction(L, 2)) register_error(L, "second argument to %s.register_function must be a function");
    lua_pushnil(L);
    lua_insert(L, 1);  // name 2, callback 3
    lua_pushnil(L);    // description 4
}

// redis.register_function / server.register_function, during FUNCTION LOAD only.
static int loader_register(lua_State *L) {
    int argc = lua_gettop(L);
    if (argc < 1 || argc > 2) return register_error(L, "wrong number of arguments to %s.register_function");
    int flags = 0;
    if (argc == 1) flags = read_named_arguments(L);
    else read_positional_arguments(L);
    size_t n;
    const char *name = lua_tolstring(L, 2, &n);
    const char *description = lua_isstring(L, 4) ? lua_tostring(L, 4) : "";
    if (!name_is_valid(name, n))  // Redis's wording names libraries here too
        return plain_error(L, "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long");
    lua_getfield(L, LUA_REGISTRYINDEX, BL_REGISTRY_PENDING);
    if (lua_isnil(L, -1)) return register_error(L, "%s.register_function can only be called on FUNCTION LOAD command");
    lua_getfield(L, -1, name);
    if (!lua_isnil(L, -1)) return plain_error(L, "Function already exists in the library");
    lua_pop(L, 1);
    lua_createtable(L, 0, 3);
    lua_pushvalue(L, 3);
    lua_setfield(L, -2, "callback");
    lua_pushnumber(L, flags);
    lua_setfield(L, -2, "flags");
    lua_pushstring(L, description);
    lua_setfield(L, -2, "description");
    lua_setfield(L, -2, name);
    return 0;
}

// After a load: register_function, if a library kept it, refuses from now on.
static void end_registration(lua_State *L) {
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, BL_REGISTRY_PENDING);
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
    if (bl_load_text(L, code, length, "@user_function") != 0) {
        Buf tmp = {0};
        bl_buf_str(&tmp, "ERR Error compiling function: ");
        bl_buf_str(&tmp, lua_tostring(L, -1));
        bl_buf_error(b, tmp.p, tmp.n);
        free(tmp.p);
        lua_pop(L, 1);
        return -1;
    }
    // The library's environment: read-only. While it loads it holds only the load-time API
    // (as Redis gives: no other global, not even `math`); once loaded, its functions see
    // every global and the whole redis API.
    lua_newtable(L);  // env
    // The load-time API, as `redis` and as Valkey's `server`: register_function names the
    // one the library used in its errors.
    const char *apis[] = {"redis", "server"};
    for (int i = 0; i < 2; i++) {
        lua_newtable(L);
        lua_pushstring(L, apis[i]);
        lua_pushcclosure(L, loader_register, 1);
        lua_setfield(L, -2, "register_function");
        bl_set_function(L, "log", bl_redis_log);
        bl_set_log_levels(L);
        bl_set_version(L);
        lua_newtable(L);
        bl_set_function(L, "__index", loader_missing);
        lua_setmetatable(L, -2);
        bl_make_readonly(L);
        lua_setfield(L, -2, apis[i]);
    }
    lua_newtable(L);  // env's metatable
    bl_set_function(L, "__index", loader_missing);
    bl_set_function(L, "__newindex", bl_globals_newindex);
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    bl_make_readonly(L);
    lua_setfenv(L, -3);  // chunk's environment, a read-only view; env stays below for the switch after loading
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, BL_REGISTRY_PENDING);
    lua_pushcfunction(L, bl_error_handler);
    lua_pushvalue(L, -3);  // the chunk
    h->load_deadline_ms = bl_monotonic_ms() + BL_LOAD_TIMEOUT_MS;
    int status = lua_pcall(L, 0, 0, -2);
    h->load_deadline_ms = 0;
    if (status != 0) {
        Buf tmp = {0};
        bl_buf_str(&tmp, "ERR Error registering functions: ");
        if (lua_istable(L, -1)) {
            lua_getfield(L, -1, "err");
            bl_buf_str(&tmp, lua_tostring(L, -1) ? lua_tostring(L, -1) : "error");
            lua_pop(L, 1);
        } else {
            bl_buf_str(&tmp, "ERR ");
            bl_buf_str(&tmp, lua_tostring(L, -1) ? lua_tostring(L, -1) : "error");
        }
        bl_buf_error(b, tmp.p, tmp.n);
        free(tmp.p);
        lua_settop(L, 0);
        end_registration(L);
        return -1;
    }
    lua_pop(L, 1);  // the handler; env and chunk remain
    // At run time the library's functions see the globals and the whole redis API.
    lua_getmetatable(L, -1);
    lua_pushvalue(L, LUA_GLOBALSINDEX);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    lua_getglobal(L, "redis");
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "server");  // the keys exist, so the read-only guard is not consulted
    lua_setfield(L, -2, "redis");
    lua_getfield(L, LUA_REGISTRYINDEX, BL_REGISTRY_PENDING);
    int count = 0;
    lua_getfield(L, LUA_REGISTRYINDEX, BL_REGISTRY_FUNCTIONS);
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
        bl_buf_append(b, name, n);
        bl_buf_append(b, "\0", 1);
        int t = snprintf(tmp, sizeof tmp, "%d", flags);
        bl_buf_append(b, tmp, (size_t)t);
        bl_buf_append(b, "\0", 1);
        bl_buf_str(b, description ? description : "");
        bl_buf_append(b, "\0", 1);
        lua_pop(L, 1);
        if (install) {
            lua_getfield(L, -1, "callback");
            lua_setfield(L, -4, name);  // functions[name] = callback
        }
        lua_pop(L, 1);
        count++;
    }
    lua_settop(L, 0);
    end_registration(L);
    if (count == 0) {
        b->n = 0;
        bl_buf_str(b, "-ERR No functions registered\r\n");
        return -1;
    }
    return 0;
}

void berth_lua_flush_functions(BerthLua *h) {
    lua_newtable(h->L);
    lua_setfield(h->L, LUA_REGISTRYINDEX, BL_REGISTRY_FUNCTIONS);
    lua_gc(h->L, LUA_GCCOLLECT, 0);
}

const char *berth_lua_result(BerthLua *h, size_t *length) {
    *length = h->result.n;
    return h->result.p;
}

void berth_lua_flush(BerthLua *h) {
    lua_newtable(h->L);
    lua_setfield(h->L, LUA_REGISTRYINDEX, BL_REGISTRY_SCRIPTS);
    lua_gc(h->L, LUA_GCCOLLECT, 0);
}
