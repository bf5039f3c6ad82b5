/*
 * The server's side of the C module ABI, for the Swift engine.
 *
 * The engine implements the module API in Swift and registers each function here by its
 * bare name ("CreateString"); GetApi answers a module asking for "RedisModule_<name>" or
 * "ValkeyModule_<name>"; a name it does not know is answered with 1 (REDISMODULE_ERR)
 * and reported to the engine (`missing_api`), which logs it once. The few variadic API
 * functions (Call, Log, CreateStringPrintf, ReplyWithErrorFormat, Replicate, EmitAOF)
 * cannot be written in Swift: they live in host.c, turn their arguments into plain
 * arrays and strings, and call the Swift helpers set with berth_module_set_helpers.
 */
#ifndef BERTH_MODULE_HOST_H
#define BERTH_MODULE_HOST_H

#include <stddef.h>

/* Every context handed to a module. Modules read only `get_api`, the first word, and
 * only in their Init; `owner` is the engine's context object. */
typedef struct BerthModuleCtx {
    void *get_api;
    void *owner;
} BerthModuleCtx;

typedef struct BerthModuleHelpers {
    /* Returns a new RedisModuleString owned by ctx's auto-memory when enabled. */
    void *(*create_string)(void *ctx, const char *ptr, size_t len);
    const char *(*string_ptr)(const void *str, size_t *len);
    int (*reply_error)(void *ctx, const char *message);
    void (*log)(void *ctx, const char *level, const char *message);
    /* Runs a command for RedisModule_Call; NULL (with errno set) or a call reply. */
    void *(*call)(void *ctx, const char *command, const char *flags, const char *const *argv, const size_t *lengths,
                  int argc);
    /* A module asked GetApi for a name Berth does not provide (the full name asked). */
    void (*missing_api)(const char *name);
    /* Replicate(ctx, command, ...) with its arguments: 0 when Berth accepts it (the command
     * exists) and records it as an effect, else 1. */
    int (*replicate)(void *ctx, const char *command, const char *const *argv, const size_t *lengths, int argc);
} BerthModuleHelpers;

/* Registers `fn` as the API function `name` (without prefix). Not thread-safe: the
 * engine registers everything once at start, before any module loads. */
void berth_module_register(const char *name, void *fn);

/* The GetApi function modules call through the first word of their context. */
int berth_module_get_api(const char *name, void *target);

/* How many names are registered (for INFO and tests). */
int berth_module_api_count(void);

void berth_module_set_helpers(BerthModuleHelpers helpers);

#endif
