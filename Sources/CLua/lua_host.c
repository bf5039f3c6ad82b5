// Berth's Lua host: the script environment Redis gives EVAL scripts, built on Lua 5.1,
// and the runs of scripts and functions in it.
#include "lua_internal.h"

// Debian's lua-cjson-dev and lua-bitop-dev, linked statically: the `cjson` and `bit`
// libraries Redis gives scripts.
extern int luaopen_cjson(lua_State *L);
extern int luaopen_bit(lua_State *L);
// Berth's own `cmsgpack` and `struct` (msgpack.c, struct.c): Debian packages neither.
extern int berth_luaopen_cmsgpack(lua_State *L);
extern int berth_luaopen_struct(lua_State *L);
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

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

// A Lua number as a command argument, as Redis 7.2 writes it: an integral value within
// half the 64-bit range as an integer (-0 as 0), anything else with the fewest
// significant digits that read back exactly, laid out as Redis's double writer does (plain
// up to a point, then d.ddde±x): 0.1, 0.00001, 1.5e-7, 1e+300. `out` holds 32 bytes.
static int format_number_argument(char *out, double d) {
    if (isnan(d)) return snprintf(out, 32, "nan");
    if (isinf(d)) return snprintf(out, 32, d > 0 ? "inf" : "-inf");
    if (d >= (double)(-LLONG_MAX / 2) && d <= (double)(LLONG_MAX / 2) && (double)(long long)d == d) {
        return snprintf(out, 32, "%lld", (long long)d);
    }
    // Shortest digits: the first precision whose %e form reads back as d.
    char sci[40];
    for (int p = 0; p < 17; p++) {
        snprintf(sci, sizeof(sci), "%.*e", p, d);
        if (strtod(sci, NULL) == d) break;
    }
    // sci is [-]D[.DDD]e±XX: collect the digits and the power of ten of the last one.
    char digits[20];
    int n = 0, k = 0, len = 0;
    const char *c = sci;
    if (*c == '-') { out[len++] = '-'; c++; }
    for (; *c && *c != 'e'; c++) {
        if (*c != '.') digits[n++] = *c;
    }
    k = atoi(c + 1) - (n - 1);
    while (n > 1 && digits[n - 1] == '0') { n--; k++; }
    int magnitude = abs(k + n - 1);
    if (k >= 0 && magnitude < n + 7) {
        memcpy(out + len, digits, n); len += n;
        memset(out + len, '0', k); len += k;
    } else if (k < 0 && (k > -7 || magnitude < 4)) {
        int offset = n + k;
        if (offset <= 0) {
            out[len++] = '0'; out[len++] = '.';
            memset(out + len, '0', -offset); len += -offset;
            memcpy(out + len, digits, n); len += n;
        } else {
            memcpy(out + len, digits, offset); len += offset;
            out[len++] = '.';
            memcpy(out + len, digits + offset, n - offset); len += n - offset;
        }
    } else {
        out[len++] = digits[0];
        if (n > 1) { out[len++] = '.'; memcpy(out + len, digits + 1, n - 1); len += n - 1; }
        len += snprintf(out + len, 32 - len, "e%c%d", k + n - 1 < 0 ? '-' : '+', magnitude);
    }
    out[len] = '\0';
    return len;
}

static int redis_command(lua_State *L, int raise) {
    BerthLua *h = bl_host(L);
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
    // Numbers are written as Redis 7.2 writes them, not with Lua's 14 digits:
    // 9007199254740991 must reach the command as itself.
    char (*numbers)[32] = malloc(sizeof(*numbers) * (size_t)argc);
    for (int i = 0; i < argc; i++) {
        int t = lua_type(L, i + 1);
        if (t == LUA_TNUMBER) {
            int n = format_number_argument(numbers[i], (double)lua_tonumber(L, i + 1));
            argv[i] = numbers[i];
            lens[i] = (size_t)n;
            continue;
        }
        if (t != LUA_TSTRING) {
            free(argv);
            free(lens);
            free(numbers);
            lua_createtable(L, 0, 1);
            lua_pushstring(L, "ERR Lua redis lib command arguments must be strings or integers");
            lua_setfield(L, -2, "err");
            if (raise) return lua_error(L);
            return 1;
        }
        argv[i] = lua_tolstring(L, i + 1, &lens[i]);
    }
    h->call.n = 0;
    int status = h->command(h->context, argv, lens, argc, h->resp, &h->call);
    free(argv);
    free(lens);
    free(numbers);
    lua_settop(L, 0);  // the arguments are done with: room on the stack for the reply
    if (status == -2) return raise_restart(L, h);
    bl_parse_reply(L, h->call.p, h->call.p + h->call.n);
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

// redis.error_reply(text): as in Redis, a text without "CODE " in front gets the ERR
// code ("" becomes "ERR ", "oops" becomes "ERR oops"), and a leading '-' is dropped.
static int redis_error_reply(lua_State *L) {
    if (lua_gettop(L) != 1 || !lua_isstring(L, 1)) return redis_reply_table(L, "err");
    size_t n;
    const char *s = lua_tolstring(L, 1, &n);
    if (n > 0 && s[0] == '-') { s++; n--; }
    lua_createtable(L, 0, 1);
    if (memchr(s, ' ', n) == NULL) {
        lua_pushliteral(L, "ERR ");
        lua_pushlstring(L, s, n);
        lua_concat(L, 2);
    } else {
        lua_pushlstring(L, s, n);
    }
    lua_setfield(L, -2, "err");
    return 1;
}
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

int bl_redis_log(lua_State *L) {
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
    BerthLua *h = bl_host(L);
    if (h->context) h->log(h->context, level, msg, n);  // no client to attribute it to while loading
    return 0;
}

static int redis_setresp(lua_State *L) {
    if (lua_gettop(L) != 1) return raise_error(L, "redis.setresp() requires one argument.");
    int v = (int)luaL_checkinteger(L, 1);
    if (v != 2 && v != 3) return raise_error(L, "RESP version must be 2 or 3.");
    bl_host(L)->resp = v;
    return 0;
}

static int redis_noop(lua_State *L) { (void)L; return 0; }

// redis.set_repl(flags): whether the script's next writes reach replicas and the AOF
// (REPL_NONE stops them, REPL_ALL resumes; one stream serves both, so REPL_AOF and
// REPL_REPLICA each resume it too).
static int redis_set_repl(lua_State *L) {
    BerthLua *h = bl_host(L);
    if (lua_gettop(L) != 1) return raise_error(L, "redis.set_repl() requires two arguments.");
    int flags = (int)lua_tonumber(L, 1);
    if (flags & ~3) return raise_error(L, "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.");
    h->repl = flags;
    return 0;
}
static int redis_true(lua_State *L) { lua_pushboolean(L, 1); return 1; }

// ---- math.random: one generator per interpreter, seeded at random; math.randomseed makes
// the sequence that follows repeatable, as in Redis 7 ----

static int math_random(lua_State *L) {
    BerthLua *h = bl_host(L);
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
    bl_host(L)->random = (uint64_t)luaL_checkinteger(L, 1);
    return 0;
}

// ---- pcall as Redis 7 gives it to scripts ----

// Like Lua's pcall, except that an error raised by redis.call (a table with `err`) reaches
// the script as its message string, as in Redis 7.
static int script_pcall(lua_State *L) {
    luaL_checkany(L, 1);
    if (lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0) != 0) {
        if (bl_host(L)->restart) return lua_error(L);
        if (lua_istable(L, -1)) {
            lua_getfield(L, -1, "err");
            const char *e = lua_tostring(L, -1);
            // A kill is not the script's to catch: pass it on.
            if (e && (strncmp(e, "ERR Script killed by user", 25) == 0 || strcmp(e, "FUNCTION LOAD timeout") == 0)) {
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

int bl_globals_newindex(lua_State *L) { return luaL_error(L, "Attempt to modify a readonly table"); }

// Records the script line where an error was raised, for the error's trailer.
int bl_error_handler(lua_State *L) {
    lua_Debug ar;
    for (int level = 0; lua_getstack(L, level, &ar); level++) {
        lua_getinfo(L, "Sl", &ar);
        if (ar.currentline > 0 && (strcmp(ar.source, "@user_script") == 0 || strcmp(ar.source, "@user_function") == 0)) {
            bl_host(L)->line = ar.currentline;
            break;
        }
    }
    return 1;
}

void bl_set_function(lua_State *L, const char *name, lua_CFunction f) {
    lua_pushcfunction(L, f);
    lua_setfield(L, -2, name);
}

void bl_set_number(lua_State *L, const char *name, int v) {
    lua_pushnumber(L, v);
    lua_setfield(L, -2, name);
}

// Lets the server stop a script that runs too long (SCRIPT KILL / FUNCTION KILL). The
// error is raised again at every later check, so a script's own pcall cannot swallow it.
static void count_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    BerthLua *h = bl_host(L);
    if (!h->context) {
        // A library's load-time code only registers functions: past its time it is stopped,
        // and stopped again at every later check, so its own pcall cannot keep it going.
        if (h->load_deadline_ms && bl_monotonic_ms() > h->load_deadline_ms) {
            lua_createtable(L, 0, 1);
            lua_pushstring(L, "FUNCTION LOAD timeout");
            lua_setfield(L, -2, "err");
            lua_error(L);
        }
        return;
    }
    int verdict = h->busy(h->context);
    if (verdict == 0) return;
    lua_createtable(L, 0, 1);
    lua_pushstring(L, verdict == 2 ? "ERR Script killed by user with FUNCTION KILL..."
                                   : "ERR Script killed by user with SCRIPT KILL...");
    lua_setfield(L, -2, "err");
    lua_error(L);
}

uint64_t bl_monotonic_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

// redis.LOG_* on the table at the top of the stack (the run-time and load-time redis tables).
void bl_set_log_levels(lua_State *L) {
    bl_set_number(L, "LOG_DEBUG", 0);
    bl_set_number(L, "LOG_VERBOSE", 1);
    bl_set_number(L, "LOG_NOTICE", 2);
    bl_set_number(L, "LOG_WARNING", 3);
}

// redis.REDIS_VERSION and REDIS_VERSION_NUM (0x00MMmmpp) on the table at the top of the stack.
void bl_set_version(lua_State *L) {
    const char *version = bl_host(L)->version;
    int major = 0, minor = 0, patch = 0;
    sscanf(version, "%d.%d.%d", &major, &minor, &patch);
    lua_pushstring(L, version);
    lua_setfield(L, -2, "REDIS_VERSION");
    lua_pushnumber(L, (lua_Number)((major << 16) | (minor << 8) | patch));
    lua_setfield(L, -2, "REDIS_VERSION_NUM");
}

BerthLua *berth_lua_new(BerthLuaCommand command, BerthLuaLog log, BerthLuaBusy busy, const char *version) {
    BerthLua *h = calloc(1, sizeof *h);
    snprintf(h->version, sizeof h->version, "%s", version);
    h->command = command;
    h->log = log;
    h->busy = busy;
    h->resp = 2;
    if (getrandom(&h->random, sizeof h->random, 0) != sizeof h->random) h->random = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)h;
    lua_State *L = luaL_newstate();
    h->L = L;
    lua_pushcfunction(L, luaopen_base); lua_call(L, 0, 0);
    lua_pushcfunction(L, luaopen_table); lua_call(L, 0, 0);
    lua_pushcfunction(L, luaopen_string); lua_call(L, 0, 0);
    lua_pushcfunction(L, luaopen_math); lua_call(L, 0, 0);
    lua_pushlightuserdata(L, h);
    lua_setfield(L, LUA_REGISTRYINDEX, BL_REGISTRY_HOST);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, BL_REGISTRY_SCRIPTS);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, BL_REGISTRY_FUNCTIONS);
    // No file or module loading from scripts.
    const char *removed[] = {"loadfile", "dofile", "load", "require", "module", "print", "gcinfo", NULL};
    for (int i = 0; removed[i]; i++) {
        lua_pushnil(L);
        lua_setglobal(L, removed[i]);
    }
    const struct {
        const char *name;
        lua_CFunction open;
    } libraries[] = {{"cjson", luaopen_cjson}, {"bit", luaopen_bit}, {"cmsgpack", berth_luaopen_cmsgpack},
                     {"struct", berth_luaopen_struct}};
    for (size_t i = 0; i < sizeof libraries / sizeof libraries[0]; i++) {
        lua_pushcfunction(L, libraries[i].open);
        lua_call(L, 0, 1);
        lua_setglobal(L, libraries[i].name);
    }
    lua_pushcfunction(L, script_pcall);
    lua_setglobal(L, "pcall");
    lua_sethook(L, count_hook, LUA_MASKCOUNT, 100000);
    lua_getglobal(L, "math");
    bl_set_function(L, "random", math_random);
    bl_set_function(L, "randomseed", math_randomseed);
    lua_pop(L, 1);
    lua_newtable(L);
    bl_set_function(L, "call", redis_call);
    bl_set_function(L, "pcall", redis_pcall);
    bl_set_function(L, "error_reply", redis_error_reply);
    bl_set_function(L, "status_reply", redis_status_reply);
    bl_set_function(L, "sha1hex", redis_sha1hex);
    bl_set_function(L, "log", bl_redis_log);
    bl_set_function(L, "setresp", redis_setresp);
    bl_set_function(L, "set_repl", redis_set_repl);
    bl_set_function(L, "replicate_commands", redis_true);
    bl_set_log_levels(L);
    bl_set_version(L);
    bl_set_number(L, "REPL_NONE", 0);
    bl_set_number(L, "REPL_AOF", 1);
    bl_set_number(L, "REPL_SLAVE", 2);
    bl_set_number(L, "REPL_REPLICA", 2);
    bl_set_number(L, "REPL_ALL", 3);
    lua_setglobal(L, "redis");
    // From here on, globals and libraries are read-only and unknown globals are errors.
    bl_seal_environment(L);
    return h;
}

void berth_lua_free(BerthLua *h) {
    lua_close(h->L);
    free(h->result.p);
    free(h->call.p);
    free(h);
}

int berth_lua_has(BerthLua *h, const char *sha) {
    lua_getfield(h->L, LUA_REGISTRYINDEX, BL_REGISTRY_SCRIPTS);
    lua_getfield(h->L, -1, sha);
    int found = !lua_isnil(h->L, -1);
    lua_pop(h->L, 2);
    return found;
}

int berth_lua_load(BerthLua *h, const char *sha, const char *body, size_t length) {
    lua_State *L = h->L;
    h->result.n = 0;
    if (berth_lua_has(h, sha)) return 0;
    if (bl_load_text(L, body, length, "@user_script") != 0) {
        size_t n;
        const char *msg = lua_tolstring(L, -1, &n);
        Buf tmp = {0};
        bl_buf_str(&tmp, "ERR Error compiling script (new function): ");
        bl_buf_append(&tmp, msg, n);
        bl_buf_error(&h->result, tmp.p, tmp.n);
        free(tmp.p);
        lua_pop(L, 1);
        return -1;
    }
    lua_getfield(L, LUA_REGISTRYINDEX, BL_REGISTRY_SCRIPTS);
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, sha);
    lua_pop(L, 2);
    return 0;
}

static void push_array(lua_State *L, const char *const *items, const size_t *lens, int n) {
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushlstring(L, items[i], lens[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

// KEYS or ARGV, as a global: set in the globals table behind the read-only proxy.
static void set_array(lua_State *L, const char *name, const char *const *items, const size_t *lens, int n) {
    lua_getfield(L, LUA_REGISTRYINDEX, BL_REGISTRY_REAL_GLOBALS);
    lua_pushstring(L, name);
    push_array(L, items, lens, n);
    lua_rawset(L, -3);
    lua_pop(L, 1);
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
        bl_write_value(L, b, (Protocols){resp, h->resp}, 0);
        failed = b->n > 0 && b->p[0] == '-';
    } else {
        // Uncaught: a redis.call error table or a Lua error string, with Redis's trailer.
        Buf msg = {0};
        if (lua_istable(L, -1)) {
            lua_getfield(L, -1, "err");
            size_t n;
            const char *s = lua_tolstring(L, -1, &n);
            if (s) bl_buf_append(&msg, s, n);
            lua_pop(L, 1);
        } else {
            size_t n;
            const char *s = lua_tolstring(L, -1, &n);
            bl_buf_str(&msg, "ERR ");
            if (s) bl_buf_append(&msg, s, n);
        }
        char trailer[160];
        int t = snprintf(trailer, sizeof trailer, " script: %s, on @%s:%d.", name, h->chunk, h->line);
        bl_buf_append(&msg, trailer, (size_t)t);
        bl_buf_error(b, msg.p, msg.n);
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
    h->restart = 0;
    h->repl = 3;
    h->chunk = chunk;
}

int berth_lua_replication(BerthLua *h) { return h->repl; }

int berth_lua_run(BerthLua *h, const char *sha, const char *const *keys, const size_t *key_lengths, int nkeys,
                  const char *const *args, const size_t *arg_lengths, int nargs, int resp, void *context) {
    lua_State *L = h->L;
    begin_call(h, context, "user_script");
    set_array(L, "KEYS", keys, key_lengths, nkeys);
    set_array(L, "ARGV", args, arg_lengths, nargs);
    lua_pushcfunction(L, bl_error_handler);
    lua_getfield(L, LUA_REGISTRYINDEX, BL_REGISTRY_SCRIPTS);
    lua_getfield(L, -1, sha);
    lua_remove(L, -2);
    return finish_call(h, 0, resp, sha);
}

int berth_lua_fcall(BerthLua *h, const char *name, const char *const *keys, const size_t *key_lengths, int nkeys,
                    const char *const *args, const size_t *arg_lengths, int nargs, int resp, void *context) {
    lua_State *L = h->L;
    begin_call(h, context, "user_function");
    lua_pushcfunction(L, bl_error_handler);
    lua_getfield(L, LUA_REGISTRYINDEX, BL_REGISTRY_FUNCTIONS);
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 2);
        bl_buf_str(&h->result, "-ERR Function not found\r\n");
        h->context = NULL;
        return -1;
    }
    push_array(L, keys, key_lengths, nkeys);
    push_array(L, args, arg_lengths, nargs);
    return finish_call(h, 2, resp, name);
}

