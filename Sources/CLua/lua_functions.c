// Berth's Lua host: FUNCTION LOAD's libraries (`#!lua name=<lib>`), whose code runs in an
// environment of its own to register functions with redis.register_function.
#include "lua_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    lua_getfield(L, LUA_REGISTRYINDEX, BL_REGISTRY_PENDING);
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
    if (bl_load_text(L, code, length, "@user_function") != 0) {
        Buf tmp = {0};
        bl_buf_str(&tmp, "ERR Error compiling function: ");
        bl_buf_str(&tmp, lua_tostring(L, -1));
        bl_buf_error(b, tmp.p, tmp.n);
        free(tmp.p);
        lua_pop(L, 1);
        return -1;
    }
    // The library's environment: read-only, falling back to the globals; `redis` holds only
    // what a library may use while it loads.
    lua_newtable(L);  // env
    lua_newtable(L);  // load-time redis
    bl_set_function(L, "register_function", loader_register);
    bl_set_function(L, "log", bl_redis_log);
    bl_set_log_levels(L);
    lua_newtable(L);
    bl_set_function(L, "__index", loader_missing);
    lua_setmetatable(L, -2);
    bl_make_readonly(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "server");  // Valkey's name for it
    lua_setfield(L, -2, "redis");
    lua_newtable(L);  // env's metatable
    lua_pushvalue(L, LUA_GLOBALSINDEX);
    lua_setfield(L, -2, "__index");
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
        return -1;
    }
    lua_pop(L, 1);  // the handler; env and chunk remain
    // At run time the library's functions see the whole redis API.
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
