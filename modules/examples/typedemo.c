/*
 * typedemo: Berth's example of a module data type. A "tdcounter" value is a 64-bit
 * counter the module allocates; the server frees it through the type's free callback,
 * and writes it to snapshots (and reads it back) through rdb_save and rdb_load. A value
 * is saved as the counter, a check string and the counter halved as a double and as a
 * float, so that a file read with the wrong framing fails to load instead of loading junk.
 *
 *   typedemo.incr <key> [by]   creates or increments the counter, replies its value
 *   typedemo.get <key>         the counter's value, or nil
 *   typedemo.frees             how many values the server has freed so far
 *   typedemo.total             how many increments ever happened: module-global state,
 *                              saved after the keys (aux_save) and loaded back (aux_load)
 */
#include "berthmodule.h"

#include <stdatomic.h>
#include <string.h>

static RedisModuleType *CounterType;
static atomic_long frees;
static atomic_long total;

static void counter_free(void *value) {
    RedisModule_Free(value);
    atomic_fetch_add(&frees, 1);
}

static void *counter_load(RedisModuleIO *io, int encver) {
    if (encver != 0) return NULL;
    long long value = RedisModule_LoadSigned(io);
    size_t len = 0;
    char *check = RedisModule_LoadStringBuffer(io, &len);
    double half = RedisModule_LoadDouble(io);
    float halfFloat = RedisModule_LoadFloat(io);
    int ok = !RedisModule_IsIOError(io) && check && len == 9 && memcmp(check, "tdcounter", 9) == 0 &&
             half == (double)value / 2 && halfFloat == (float)value / 2;
    if (check) RedisModule_Free(check);
    if (!ok) return NULL;
    long long *counter = RedisModule_Alloc(sizeof(*counter));
    *counter = value;
    return counter;
}

static void counter_save(RedisModuleIO *io, void *value) {
    long long counter = *(long long *)value;
    RedisModule_SaveSigned(io, counter);
    RedisModule_SaveStringBuffer(io, "tdcounter", 9);
    RedisModule_SaveDouble(io, (double)counter / 2);
    RedisModule_SaveFloat(io, (float)counter / 2);
}

static void total_save(RedisModuleIO *io, int when) {
    if (when != REDISMODULE_AUX_AFTER_RDB) return;
    RedisModule_SaveUnsigned(io, (uint64_t)atomic_load(&total));
}

static int total_load(RedisModuleIO *io, int encver, int when) {
    if (encver != 0 || when != REDISMODULE_AUX_AFTER_RDB) return REDISMODULE_ERR;
    uint64_t value = RedisModule_LoadUnsigned(io);
    if (RedisModule_IsIOError(io)) return REDISMODULE_ERR;
    atomic_store(&total, (long)value);
    return REDISMODULE_OK;
}

static int total_command(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    REDISMODULE_NOT_USED(argv);
    if (argc != 1) return RedisModule_WrongArity(ctx);
    return RedisModule_ReplyWithLongLong(ctx, atomic_load(&total));
}

static int incr_command(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 2 && argc != 3) return RedisModule_WrongArity(ctx);
    long long by = 1;
    if (argc == 3 && RedisModule_StringToLongLong(argv[2], &by) != REDISMODULE_OK)
        return RedisModule_ReplyWithError(ctx, "ERR value is not an integer or out of range");
    RedisModuleKey *key = RedisModule_OpenKey(ctx, argv[1], REDISMODULE_READ | REDISMODULE_WRITE);
    int type = RedisModule_KeyType(key);
    long long *counter;
    if (type == REDISMODULE_KEYTYPE_EMPTY) {
        counter = RedisModule_Alloc(sizeof(*counter));
        *counter = 0;
        RedisModule_ModuleTypeSetValue(key, CounterType, counter);
    } else if (RedisModule_ModuleTypeGetType(key) == CounterType) {
        counter = RedisModule_ModuleTypeGetValue(key);
    } else {
        RedisModule_CloseKey(key);
        return RedisModule_ReplyWithError(ctx, REDISMODULE_ERRORMSG_WRONGTYPE);
    }
    *counter += by;
    atomic_fetch_add(&total, 1);
    RedisModule_CloseKey(key);
    return RedisModule_ReplyWithLongLong(ctx, *counter);
}

static int get_command(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 2) return RedisModule_WrongArity(ctx);
    RedisModuleKey *key = RedisModule_OpenKey(ctx, argv[1], REDISMODULE_READ);
    if (!key) return RedisModule_ReplyWithNull(ctx);
    if (RedisModule_ModuleTypeGetType(key) != CounterType) {
        RedisModule_CloseKey(key);
        return RedisModule_ReplyWithError(ctx, REDISMODULE_ERRORMSG_WRONGTYPE);
    }
    long long *counter = RedisModule_ModuleTypeGetValue(key);
    RedisModule_CloseKey(key);
    return RedisModule_ReplyWithLongLong(ctx, *counter);
}

static int frees_command(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    REDISMODULE_NOT_USED(argv);
    if (argc != 1) return RedisModule_WrongArity(ctx);
    return RedisModule_ReplyWithLongLong(ctx, atomic_load(&frees));
}

int RedisModule_OnLoad(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    REDISMODULE_NOT_USED(argv);
    REDISMODULE_NOT_USED(argc);
    if (RedisModule_Init(ctx, "typedemo", 1, REDISMODULE_APIVER_1) == REDISMODULE_ERR) return REDISMODULE_ERR;
    RedisModuleTypeMethods methods = {.version = REDISMODULE_TYPE_METHOD_VERSION, .rdb_load = counter_load,
                                      .rdb_save = counter_save, .free = counter_free, .aux_load = total_load,
                                      .aux_save = total_save, .aux_save_triggers = REDISMODULE_AUX_AFTER_RDB};
    CounterType = RedisModule_CreateDataType(ctx, "tdcounter", 0, &methods);
    if (CounterType == NULL) return REDISMODULE_ERR;
    if (RedisModule_CreateCommand(ctx, "typedemo.incr", incr_command, "write deny-oom", 1, 1, 1) == REDISMODULE_ERR ||
        RedisModule_CreateCommand(ctx, "typedemo.get", get_command, "readonly", 1, 1, 1) == REDISMODULE_ERR ||
        RedisModule_CreateCommand(ctx, "typedemo.frees", frees_command, "readonly", 0, 0, 0) == REDISMODULE_ERR ||
        RedisModule_CreateCommand(ctx, "typedemo.total", total_command, "readonly", 0, 0, 0) == REDISMODULE_ERR)
        return REDISMODULE_ERR;
    return REDISMODULE_OK;
}
