/*
 * blockdemo: Berth's example module for the blocking module API. Built against
 * berthmodule.h; the same source loads into redis-server 7 (see Tests/python/test_modules.py).
 *
 *   blockdemo.random <delay_ms> [timeout_ms]  a thread answers a random number after a delay;
 *                                             past timeout_ms the timeout callback answers
 *   blockdemo.slow <delay_ms>                 the same without a timeout callback
 *   blockdemo.pop <key> <timeout_ms>          pops the list at key, waiting for a push
 *   blockdemo.scan                            a thread counts keys with SCAN under the lock
 *   blockdemo.abort                           a thread "fails to start": AbortBlock + error
 *   blockdemo.stamp                           a thread unblocks at once with its CLOCK_MONOTONIC
 *                                             time in ns (berth-bench's module completion latency)
 *   blockdemo.call <command> [args...]        RedisModule_Call in the client's protocol, reply passed through;
 *                                             its writes are replicated ("!"), as a module's writes should be
 *   blockdemo.keyinfo <key>                   type and length through the key API
 *   blockdemo.stats                           [privdata frees, disconnect callbacks, timeouts]
 *
 * Loading with the argument "fail" makes OnLoad fail (to test that path).
 */
#include "berthmodule.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static atomic_long frees, disconnects, timeouts;

static void free_privdata(RedisModuleCtx *ctx, void *privdata) {
    REDISMODULE_NOT_USED(ctx);
    RedisModule_Free(privdata);
    atomic_fetch_add(&frees, 1);
}

static void on_disconnect(RedisModuleCtx *ctx, RedisModuleBlockedClient *bc) {
    REDISMODULE_NOT_USED(ctx);
    REDISMODULE_NOT_USED(bc);
    atomic_fetch_add(&disconnects, 1);
}

static int timeout_reply(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    REDISMODULE_NOT_USED(argv);
    REDISMODULE_NOT_USED(argc);
    atomic_fetch_add(&timeouts, 1);
    return RedisModule_ReplyWithSimpleString(ctx, "Request timedout");
}

/* ---- blockdemo.random ---- */

struct random_job {
    RedisModuleBlockedClient *bc;
    long long delay_ms;
};

static int random_reply(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    REDISMODULE_NOT_USED(argv);
    REDISMODULE_NOT_USED(argc);
    long long *value = RedisModule_GetBlockedClientPrivateData(ctx);
    return RedisModule_ReplyWithLongLong(ctx, *value);
}

static void *random_thread(void *arg) {
    struct random_job *job = arg;
    struct timespec ts = {job->delay_ms / 1000, (job->delay_ms % 1000) * 1000000L};
    RedisModule_BlockedClientMeasureTimeStart(job->bc);  /* the thread's time counts in commandstats */
    nanosleep(&ts, NULL);
    RedisModule_BlockedClientMeasureTimeEnd(job->bc);
    long long *value = RedisModule_Alloc(sizeof(long long));
    *value = 1 + rand() % 1000000;
    RedisModule_UnblockClient(job->bc, value);
    RedisModule_Free(job);
    return NULL;
}

static int random_command(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 2 && argc != 3) return RedisModule_WrongArity(ctx);
    long long delay, timeout = 0;
    if (RedisModule_StringToLongLong(argv[1], &delay) != REDISMODULE_OK || delay < 0 ||
        (argc == 3 && (RedisModule_StringToLongLong(argv[2], &timeout) != REDISMODULE_OK || timeout < 0)))
        return RedisModule_ReplyWithError(ctx, "ERR invalid delay or timeout");
    /* blockdemo.slow has no timeout callback, so CLIENT UNBLOCK cannot end it. */
    size_t namelen;
    const char *name = RedisModule_StringPtrLen(argv[0], &namelen);
    int slow = namelen == 14 && strncasecmp(name, "blockdemo.slow", 14) == 0;
    RedisModuleBlockedClient *bc =
        RedisModule_BlockClient(ctx, random_reply, slow ? NULL : timeout_reply, free_privdata, slow ? 0 : timeout);
    RedisModule_SetDisconnectCallback(bc, on_disconnect);
    struct random_job *job = RedisModule_Alloc(sizeof(*job));
    job->bc = bc;
    job->delay_ms = delay;
    pthread_t tid;
    if (pthread_create(&tid, NULL, random_thread, job) != 0) {
        RedisModule_AbortBlock(bc);
        RedisModule_Free(job);
        return RedisModule_ReplyWithError(ctx, "ERR Can't start thread");
    }
    pthread_detach(tid);
    return REDISMODULE_OK;
}

/* ---- blockdemo.stamp: UnblockClient -> reply latency, for berth-bench ---- */

static void *stamp_thread(void *arg) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long *stamp = RedisModule_Alloc(sizeof(long long));
    *stamp = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    RedisModule_UnblockClient(arg, stamp);
    return NULL;
}

static int stamp_command(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    REDISMODULE_NOT_USED(argv);
    if (argc != 1) return RedisModule_WrongArity(ctx);
    RedisModuleBlockedClient *bc = RedisModule_BlockClient(ctx, random_reply, timeout_reply, free_privdata, 0);
    pthread_t tid;
    if (pthread_create(&tid, NULL, stamp_thread, bc) != 0) {
        RedisModule_AbortBlock(bc);
        return RedisModule_ReplyWithError(ctx, "ERR Can't start thread");
    }
    pthread_detach(tid);
    return REDISMODULE_OK;
}

/* ---- blockdemo.abort: the failed-thread-start path on purpose ---- */

static int abort_command(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    REDISMODULE_NOT_USED(argv);
    if (argc != 1) return RedisModule_WrongArity(ctx);
    RedisModuleBlockedClient *bc = RedisModule_BlockClient(ctx, random_reply, timeout_reply, free_privdata, 0);
    RedisModule_AbortBlock(bc);
    return RedisModule_ReplyWithError(ctx, "ERR Can't start thread");
}

/* ---- blockdemo.pop ---- */

/* Replies with the popped element, or the type error, and returns OK; ERR when there is
 * nothing to pop yet. */
static int pop_now(RedisModuleCtx *ctx, RedisModuleString *keyname) {
    RedisModuleKey *key = RedisModule_OpenKey(ctx, keyname, REDISMODULE_READ | REDISMODULE_WRITE);
    int type = RedisModule_KeyType(key);
    if (type != REDISMODULE_KEYTYPE_LIST) {
        RedisModule_CloseKey(key);
        if (type == REDISMODULE_KEYTYPE_EMPTY) return REDISMODULE_ERR;
        RedisModule_ReplyWithError(ctx, REDISMODULE_ERRORMSG_WRONGTYPE);
        return REDISMODULE_OK;
    }
    RedisModuleString *element = RedisModule_ListPop(key, REDISMODULE_LIST_HEAD);
    RedisModule_CloseKey(key);
    RedisModule_ReplyWithString(ctx, element);
    RedisModule_FreeString(ctx, element);
    return REDISMODULE_OK;
}

static int pop_reply(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    REDISMODULE_NOT_USED(argv);
    REDISMODULE_NOT_USED(argc);
    return pop_now(ctx, RedisModule_GetBlockedClientReadyKey(ctx));
}

static int pop_command(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 3) return RedisModule_WrongArity(ctx);
    long long timeout;
    if (RedisModule_StringToLongLong(argv[2], &timeout) != REDISMODULE_OK || timeout < 0)
        return RedisModule_ReplyWithError(ctx, "ERR invalid timeout");
    if (pop_now(ctx, argv[1]) == REDISMODULE_OK) return REDISMODULE_OK;
    long long *marker = RedisModule_Alloc(sizeof(long long));
    *marker = 0;
    RedisModule_BlockClientOnKeys(ctx, pop_reply, timeout_reply, free_privdata, timeout, &argv[1], 1, marker);
    return REDISMODULE_OK;
}

/* ---- blockdemo.scan ---- */

static void *scan_thread(void *arg) {
    RedisModuleBlockedClient *bc = arg;
    RedisModuleCtx *ctx = RedisModule_GetThreadSafeContext(bc);
    long long count = 0;
    char cursor[32] = "0";
    RedisModule_ThreadSafeContextLock(ctx);
    do {
        RedisModuleCallReply *reply = RedisModule_Call(ctx, "SCAN", "c", cursor);
        if (!reply || RedisModule_CallReplyType(reply) != REDISMODULE_REPLY_ARRAY) {
            if (reply) RedisModule_FreeCallReply(reply);
            break;
        }
        size_t len;
        const char *next = RedisModule_CallReplyStringPtr(RedisModule_CallReplyArrayElement(reply, 0), &len);
        if (len >= sizeof(cursor)) len = sizeof(cursor) - 1;
        memcpy(cursor, next, len);
        cursor[len] = 0;
        count += (long long)RedisModule_CallReplyLength(RedisModule_CallReplyArrayElement(reply, 1));
        RedisModule_FreeCallReply(reply);
    } while (strcmp(cursor, "0") != 0);
    RedisModule_ThreadSafeContextUnlock(ctx);
    RedisModule_ReplyWithLongLong(ctx, count);
    RedisModule_FreeThreadSafeContext(ctx);
    RedisModule_UnblockClient(bc, NULL);
    return NULL;
}

static int scan_command(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    REDISMODULE_NOT_USED(argv);
    if (argc != 1) return RedisModule_WrongArity(ctx);
    RedisModuleBlockedClient *bc = RedisModule_BlockClient(ctx, NULL, timeout_reply, NULL, 0);
    pthread_t tid;
    if (pthread_create(&tid, NULL, scan_thread, bc) != 0) {
        RedisModule_AbortBlock(bc);
        return RedisModule_ReplyWithError(ctx, "ERR Can't start thread");
    }
    pthread_detach(tid);
    return REDISMODULE_OK;
}

/* ---- blockdemo.call / keyinfo / stats ---- */

static int call_command(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc < 2) return RedisModule_WrongArity(ctx);
    RedisModule_AutoMemory(ctx);
    const char *name = RedisModule_StringPtrLen(argv[1], NULL);
    RedisModuleCallReply *reply = RedisModule_Call(ctx, name, "0Ev!", argv + 2, (size_t)(argc - 2));
    if (!reply) return RedisModule_ReplyWithError(ctx, "ERR Call failed");
    return RedisModule_ReplyWithCallReply(ctx, reply);
}

static int keyinfo_command(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 2) return RedisModule_WrongArity(ctx);
    RedisModuleKey *key = RedisModule_OpenKey(ctx, argv[1], REDISMODULE_READ);
    RedisModule_ReplyWithArray(ctx, REDISMODULE_POSTPONED_LEN);
    RedisModule_ReplyWithLongLong(ctx, RedisModule_KeyType(key));
    RedisModule_ReplyWithLongLong(ctx, (long long)RedisModule_ValueLength(key));
    RedisModule_ReplyWithLongLong(ctx, key ? RedisModule_GetExpire(key) : REDISMODULE_NO_EXPIRE);
    RedisModule_ReplySetArrayLength(ctx, 3);
    if (key) RedisModule_CloseKey(key);
    return REDISMODULE_OK;
}

static int stats_command(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    REDISMODULE_NOT_USED(argv);
    if (argc != 1) return RedisModule_WrongArity(ctx);
    RedisModule_ReplyWithArray(ctx, 3);
    RedisModule_ReplyWithLongLong(ctx, atomic_load(&frees));
    RedisModule_ReplyWithLongLong(ctx, atomic_load(&disconnects));
    RedisModule_ReplyWithLongLong(ctx, atomic_load(&timeouts));
    return REDISMODULE_OK;
}

int RedisModule_OnLoad(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (RedisModule_Init(ctx, "blockdemo", 1, REDISMODULE_APIVER_1) == REDISMODULE_ERR) return REDISMODULE_ERR;
    for (int i = 0; i < argc; i++) {
        if (strcmp(RedisModule_StringPtrLen(argv[i], NULL), "fail") == 0) return REDISMODULE_ERR;
    }
    struct {
        const char *name;
        RedisModuleCmdFunc fn;
        const char *flags;
        int first, last, step;
    } commands[] = {
        {"blockdemo.random", random_command, "", 0, 0, 0},
        {"blockdemo.slow", random_command, "", 0, 0, 0},
        {"blockdemo.abort", abort_command, "", 0, 0, 0},
        {"blockdemo.stamp", stamp_command, "", 0, 0, 0},
        {"blockdemo.pop", pop_command, "write", 1, 1, 1},
        {"blockdemo.scan", scan_command, "readonly", 0, 0, 0},
        {"blockdemo.call", call_command, "write", 0, 0, 0},
        {"blockdemo.keyinfo", keyinfo_command, "readonly", 1, 1, 1},
        {"blockdemo.stats", stats_command, "readonly fast", 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (RedisModule_CreateCommand(ctx, commands[i].name, commands[i].fn, commands[i].flags, commands[i].first,
                                      commands[i].last, commands[i].step) == REDISMODULE_ERR)
            return REDISMODULE_ERR;
    }
    RedisModule_Log(ctx, REDISMODULE_LOGLEVEL_NOTICE, "blockdemo loaded with %d argument(s)", argc);
    return REDISMODULE_OK;
}
