/*
 * Berth's Lua 5.1 host for EVAL scripts: one interpreter per shard thread, with Redis's
 * script environment (the `redis` table, KEYS/ARGV, protected globals, a deterministic
 * math.random) built in C, because Lua reports errors by longjmp, which must never cross
 * Swift frames. Swift sees only plain functions: load a script, run it, and answer
 * redis.call through one callback that runs a command and returns its reply bytes.
 */
#ifndef BERTH_LUA_H
#define BERTH_LUA_H

#include <stddef.h>

typedef struct BerthLua BerthLua;

/* Runs `argv` (command name first) for redis.call/pcall; writes the reply, in protocol
 * `resp` (2, or 3 after redis.setresp(3)), into `out` (a buffer the host owns, grown with
 * berth_lua_reply_append). Returns 0, or -1 when the command was refused before running,
 * with the error text as a RESP error in `out`, or -2 to abandon the whole run (the
 * script has had no effect and will be started again; berth_lua_run then returns -2). */
typedef int (*BerthLuaCommand)(void *context, const char *const *argv, const size_t *lengths, int argc, int resp,
                               void *out);

/* redis.log(level, message): level 0 debug, 1 verbose, 2 notice, 3 warning. */
typedef void (*BerthLuaLog)(void *context, int level, const char *message, size_t length);

/* Asked every 100,000 Lua instructions while a script runs: 0 to go on, 1 to stop it as
 * SCRIPT KILL does, 2 as FUNCTION KILL does. */
typedef int (*BerthLuaBusy)(void *context);

/* `version` is the Redis version the server reports (redis.REDIS_VERSION), "x.y.z". */
BerthLua *berth_lua_new(BerthLuaCommand command, BerthLuaLog log, BerthLuaBusy busy, const char *version);
void berth_lua_free(BerthLua *lua);

/* redis.set_repl's flags in the running script: 0 when its writes must not be
 * replicated (REPL_NONE), else 1 to 3. */
int berth_lua_replication(BerthLua *lua);

/* Compiles `body` as the function of script `sha` (40 hex chars) unless it is already
 * there. 0 on success; -1 with the RESP error in berth_lua_result. */
int berth_lua_load(BerthLua *lua, const char *sha, const char *body, size_t length);
int berth_lua_has(BerthLua *lua, const char *sha);

/* Runs script `sha` with KEYS and ARGV; the reply (RESP2 or RESP3 per `resp`) is in
 * berth_lua_result afterwards. Returns 0, -1 when the reply is an error, or -2 when the
 * command callback abandoned the run. */
int berth_lua_run(BerthLua *lua, const char *sha, const char *const *keys, const size_t *key_lengths, int nkeys,
                  const char *const *args, const size_t *arg_lengths, int nargs, int resp, void *context);

/* Calls library function `name` with the KEYS and ARGV tables as its two arguments, as
 * FCALL does; the reply is in berth_lua_result. Returns as berth_lua_run does. */
int berth_lua_fcall(BerthLua *lua, const char *name, const char *const *keys, const size_t *key_lengths, int nkeys,
                    const char *const *args, const size_t *arg_lengths, int nargs, int resp, void *context);

/* Runs a function library's code (its `#!lua` line already commented out) so that it
 * registers its functions; with `install` they become callable by berth_lua_fcall. On
 * success berth_lua_result holds, per function, "name\0flags\0description\0" (flags: bit
 * 0 no-writes, 1 allow-oom, 2 allow-stale, 3 no-cluster, 4 allow-cross-slot-keys); on
 * failure the RESP error. */
int berth_lua_load_library(BerthLua *lua, const char *code, size_t length, int install);

/* Drops every installed library function. */
void berth_lua_flush_functions(BerthLua *lua);

const char *berth_lua_result(BerthLua *lua, size_t *length);

/* Drops every compiled script (SCRIPT FLUSH). */
void berth_lua_flush(BerthLua *lua);

void berth_lua_reply_append(void *out, const char *bytes, size_t length);

/* SHA1 of `data` as 40 lowercase hex characters plus NUL into `hex`. */
void berth_sha1_hex(const char *data, size_t length, char hex[41]);

#endif
