/*
 * Private to the Lua host: the host's state and what its files share (lua_host.c: the
 * script environment and runs; lua_reply.c: buffers and the RESP <-> Lua conversions;
 * lua_functions.c: function libraries).
 */
#ifndef BERTH_LUA_INTERNAL_H
#define BERTH_LUA_INTERNAL_H

#include "berth_lua.h"

#include <lua5.1/lauxlib.h>
#include <lua5.1/lua.h>
#include <lua5.1/lualib.h>

#include <stdint.h>

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
    int repl;           // redis.set_repl: 0 none, 1 AOF, 2 replicas, 3 both (the default)
    uint64_t load_deadline_ms;
    char version[16];   // redis.REDIS_VERSION  // while a library's load-time code runs: when it is stopped
};

#define BL_REGISTRY_HOST "berth.host"
#define BL_REGISTRY_SCRIPTS "berth.scripts"
#define BL_REGISTRY_FUNCTIONS "berth.functions"
#define BL_REGISTRY_PENDING "berth.pending"
#define BL_REGISTRY_REAL_GLOBALS "berth.globals"  // the table behind the read-only _G

// Which protocols a conversion writes for: the client's decides the reply's shape
// (RESP3 maps, sets, doubles and booleans flatten to RESP2 forms for a RESP2 client);
// the script's (redis.setresp) decides what a Lua boolean means, as in Redis.
typedef struct {
    int client;
    int script;
} Protocols;

BerthLua *bl_host(lua_State *L);

void bl_buf_append(Buf *b, const char *s, size_t n);
void bl_buf_str(Buf *b, const char *s);
void bl_buf_fmt(Buf *b, const char *prefix, long long v);
void bl_buf_error(Buf *b, const char *msg, size_t n);

/* Pushes the Lua value of the reply at p (RESP2, or RESP3 after redis.setresp(3)). */
const char *bl_parse_reply(lua_State *L, const char *p, const char *end);
/* Writes the value at the top of the stack (left there) as a reply. */
void bl_write_value(lua_State *L, Buf *b, Protocols resp, int depth);

uint64_t bl_monotonic_ms(void);
/* How long a library's load-time code may run (Redis and Valkey: 500 ms). */
#define BL_LOAD_TIMEOUT_MS 500

void bl_set_function(lua_State *L, const char *name, lua_CFunction f);
void bl_set_number(lua_State *L, const char *name, int v);
void bl_set_log_levels(lua_State *L);
void bl_set_version(lua_State *L);
int bl_redis_log(lua_State *L);
int bl_globals_newindex(lua_State *L);
int bl_error_handler(lua_State *L);
/* lua_sandbox.c: makes libraries and globals read-only and installs the guards. */
void bl_seal_environment(lua_State *L);
/* Replaces the table at the top of the stack by a read-only proxy of it. */
void bl_make_readonly(lua_State *L);
/* luaL_loadbuffer that never takes the body for bytecode. */
int bl_load_text(lua_State *L, const char *body, size_t length, const char *name);

#endif
