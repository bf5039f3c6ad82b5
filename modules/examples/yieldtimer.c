/*
 * yieldtimer.c - exercises timers, Yield, StringAppendBuffer, GetContextFlagsAll,
 * Replicate and the GetApi answer for a name the server lacks.
 *
 *   YT.TIMER <ms> <key> <value>   a timer that SETs key to value; replies its id
 *   YT.TIMERINFO <id>             remaining ms, or an error when no such timer
 *   YT.STOPTIMER <id>             1 if stopped before firing, else 0
 *   YT.BUSY                       loops, yielding with YIELD_FLAG_CLIENTS, until YT.STOP
 *   YT.STOP                       (allow-busy) ends YT.BUSY
 *   YT.APPEND <a> <b>             a and b joined with StringAppendBuffer
 *   YT.FLAGSALL                   GetContextFlagsAll
 *   YT.REPLICATE                  Replicate("SET", ...) and ReplicateVerbatim results
 *   YT.MISSING                    what GetApi answered OnLoad for a name nobody provides
 */
#define _DEFAULT_SOURCE
#include "berthmodule.h"

#include <string.h>
#include <unistd.h>

static volatile int stop_busy;
static int missing_status = -1;
static int missing_pointer_null = -1;

typedef struct {
    RedisModuleString *key, *value;
} TimerData;

static void set_key(RedisModuleCtx *ctx, void *data) {
    TimerData *td = data;
    RedisModuleCallReply *r = RedisModule_Call(ctx, "SET", "ss", td->key, td->value);
    if (r) RedisModule_FreeCallReply(r);
    RedisModule_FreeString(NULL, td->key);
    RedisModule_FreeString(NULL, td->value);
    RedisModule_Free(td);
}

static int timer_cmd(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    long long ms;
    if (argc != 4) return RedisModule_WrongArity(ctx);
    if (RedisModule_StringToLongLong(argv[1], &ms) != REDISMODULE_OK) return RedisModule_ReplyWithError(ctx, "ERR bad period");
    TimerData *td = RedisModule_Alloc(sizeof(*td));
    td->key = RedisModule_HoldString(NULL, argv[2]);
    td->value = RedisModule_HoldString(NULL, argv[3]);
    RedisModuleTimerID id = RedisModule_CreateTimer(ctx, ms, set_key, td);
    return RedisModule_ReplyWithLongLong(ctx, (long long)id);
}

static int timer_id(RedisModuleString *s, RedisModuleTimerID *id) {
    long long v;
    if (RedisModule_StringToLongLong(s, &v) != REDISMODULE_OK) return 0;
    *id = (RedisModuleTimerID)v;
    return 1;
}

static int timerinfo_cmd(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    RedisModuleTimerID id;
    uint64_t remaining = 0;
    void *data = NULL;
    if (argc != 2 || !timer_id(argv[1], &id)) return RedisModule_WrongArity(ctx);
    if (RedisModule_GetTimerInfo(ctx, id, &remaining, &data) != REDISMODULE_OK || data == NULL)
        return RedisModule_ReplyWithError(ctx, "ERR no such timer");
    return RedisModule_ReplyWithLongLong(ctx, (long long)remaining);
}

static int stoptimer_cmd(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    RedisModuleTimerID id;
    void *data = NULL;
    if (argc != 2 || !timer_id(argv[1], &id)) return RedisModule_WrongArity(ctx);
    if (RedisModule_StopTimer(ctx, id, &data) != REDISMODULE_OK) return RedisModule_ReplyWithLongLong(ctx, 0);
    TimerData *td = data;
    RedisModule_FreeString(NULL, td->key);
    RedisModule_FreeString(NULL, td->value);
    RedisModule_Free(td);
    return RedisModule_ReplyWithLongLong(ctx, 1);
}

static int busy_cmd(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    (void)argc;
    long long yields = 0;
    while (!stop_busy) {
        RedisModule_Yield(ctx, REDISMODULE_YIELD_FLAG_CLIENTS, "yieldtimer is busy");
        yields++;
        usleep(1000);
    }
    stop_busy = 0;
    return RedisModule_ReplyWithLongLong(ctx, yields);
}

/* yt.spin <ms>: runs for ms milliseconds, yielding without letting clients in (as a
 * long computation would), and answers the server's clock (ms) when it ended. */
static int spin_cmd(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    long long ms;
    if (argc != 2 || RedisModule_StringToLongLong(argv[1], &ms) != REDISMODULE_OK) return RedisModule_WrongArity(ctx);
    long long until = RedisModule_Milliseconds() + ms;
    while (RedisModule_Milliseconds() < until) {
        RedisModule_Yield(ctx, REDISMODULE_YIELD_FLAG_NONE, NULL);
        usleep(1000);
    }
    return RedisModule_ReplyWithLongLong(ctx, RedisModule_Milliseconds());
}

static int stop_cmd(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    (void)argc;
    stop_busy = 1;
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
}

static int append_cmd(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    size_t len;
    if (argc != 3) return RedisModule_WrongArity(ctx);
    RedisModuleString *s = RedisModule_CreateStringFromString(NULL, argv[1]);
    const char *b = RedisModule_StringPtrLen(argv[2], &len);
    RedisModule_StringAppendBuffer(NULL, s, b, len);
    RedisModule_ReplyWithString(ctx, s);
    RedisModule_FreeString(NULL, s);
    return REDISMODULE_OK;
}

static int flagsall_cmd(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    (void)argc;
    return RedisModule_ReplyWithLongLong(ctx, RedisModule_GetContextFlagsAll());
}

static int replicate_cmd(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    (void)argc;
    RedisModule_ReplyWithArray(ctx, 3);
    RedisModule_ReplyWithLongLong(ctx, RedisModule_Replicate(ctx, "SET", "cc", "k", "v"));
    RedisModule_ReplyWithLongLong(ctx, RedisModule_Replicate(ctx, "NO-SUCH-COMMAND", "c", "k"));
    return RedisModule_ReplyWithLongLong(ctx, RedisModule_ReplicateVerbatim(ctx));
}

static int missing_cmd(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    (void)argc;
    RedisModule_ReplyWithArray(ctx, 2);
    RedisModule_ReplyWithLongLong(ctx, missing_status);
    return RedisModule_ReplyWithLongLong(ctx, missing_pointer_null);
}

int RedisModule_OnLoad(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    (void)argc;
    if (RedisModule_Init(ctx, "yieldtimer", 1, REDISMODULE_APIVER_1) == REDISMODULE_ERR) return REDISMODULE_ERR;
    void *missing = NULL;
    missing_status = RedisModule_GetApi("RedisModule_NoSuchFunctionAnywhere", &missing);
    missing_pointer_null = missing == NULL;
    struct {
        const char *name, *flags;
        RedisModuleCmdFunc fn;
    } cmds[] = {
        {"yt.timer", "write", timer_cmd},         {"yt.timerinfo", "readonly", timerinfo_cmd},
        {"yt.stoptimer", "write", stoptimer_cmd}, {"yt.busy", "", busy_cmd},
        {"yt.stop", "allow-busy", stop_cmd},      {"yt.append", "readonly", append_cmd},
        {"yt.flagsall", "readonly", flagsall_cmd}, {"yt.replicate", "write", replicate_cmd},
        {"yt.missing", "readonly", missing_cmd},  {"yt.spin", "", spin_cmd},
    };
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (RedisModule_CreateCommand(ctx, cmds[i].name, cmds[i].fn, cmds[i].flags, 0, 0, 0) == REDISMODULE_ERR)
            return REDISMODULE_ERR;
    return REDISMODULE_OK;
}
