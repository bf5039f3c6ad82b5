/*
 * The plain C boundary between Berth and its JavaScript engine (SpiderMonkey 102 behind a
 * C++ shim, built as the separate shared library libBerthJS.so).
 *
 * The server does not link the engine: it dlopens libBerthJS.so and asks it for one
 * table, `berth_js_api()`, so that the fully static build and machines without
 * libmozjs still run everything else. Every engine serves one library and is used only
 * on the one thread that created it (a SpiderMonkey context never changes threads).
 *
 * A *run* is one TFCALL/TFCALLASYNC invocation, named by the server's 64-bit id. The
 * engine reports back through the host table: commands to run now (sync client), commands
 * to start (callAsync: the server settles the promise later with berth_js_settle),
 * entering and leaving the atomic section (client.block and sync functions), and the
 * run's final reply. Replies travel as RESP bytes both ways.
 */
#ifndef BERTH_JS_API_H
#define BERTH_JS_API_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct BerthJSEngine BerthJSEngine;

/* A growable byte buffer owned by the engine; the host appends through `append`. */
typedef void BerthJSBuffer;

typedef struct BerthJSHost {
    void *context;
    /* client.call / callRaw: runs argv now (inside the run's atomic section) and appends
     * its RESP3 reply to `out`. */
    void (*call)(void *context, uint64_t run, const char *const *argv, const size_t *lengths, int argc,
                 BerthJSBuffer *out);
    /* client.callAsync / callAsyncRaw: starts argv; the host later calls settle(promise). */
    void (*call_async)(void *context, uint64_t run, uint64_t promise, int raw, const char *const *argv,
                       const size_t *lengths, int argc);
    /* Enters the run's atomic section (nested entries count); 0, or -1 with the reason in
     * `out` (thrown to the script as an exception). */
    int (*enter)(void *context, uint64_t run, BerthJSBuffer *out);
    void (*leave)(void *context, uint64_t run);
    /* 1 when the run's client may wait for a promise (not inside MULTI). */
    int (*block_allowed)(void *context, uint64_t run);
    /* The run's reply (RESP, in the run's protocol), exactly once per run. */
    void (*finish)(void *context, uint64_t run, const char *reply, size_t length);
    /* redis.log: 0 debug, 1 verbose, 2 notice, 3 warning. */
    void (*log)(void *context, int level, const char *message, size_t length);
    /* The bytes the whole process has allocated (the server's used_memory), which
     * js-memory-limit bounds; callable from any thread. */
    size_t (*allocated_bytes)(void);
} BerthJSHost;

typedef struct BerthJSAPI {
    int version; /* BERTH_JS_API_VERSION */
    /* Once per process, before any engine. 0 on success. */
    int (*initialize)(void);
    /* A new engine on the calling thread; `gc_max_bytes` caps its GC heap. NULL on
     * failure. */
    BerthJSEngine *(*engine_new)(const BerthJSHost *host, size_t gc_max_bytes);
    void (*engine_free)(BerthJSEngine *engine);
    /* Runs library code (its prologue line already checked by the host) with `config`
     * (JSON text, may be empty) as redis.config. 0: `out` holds one record per function,
     * "name\0kind\0flags\0description\0" (kind "sync", "async" or "coroutine"; flags
     * comma separated); -1: `out` holds the error message. */
    int (*load)(BerthJSEngine *engine, const char *code, size_t length, const char *config, size_t config_length,
                BerthJSBuffer *out);
    /* Calls function `name` for run `run` with argv[0..<argc] (keys then arguments),
     * replying in protocol `resp`; the reply arrives through host->finish, now or later. */
    void (*invoke)(BerthJSEngine *engine, uint64_t run, const char *name, const char *const *argv,
                   const size_t *lengths, int argc, int resp);
    /* Settles a callAsync promise with a RESP3 reply (an error reply rejects it). */
    void (*settle)(BerthJSEngine *engine, uint64_t promise, int raw, const char *reply, size_t length);
    /* From any thread: stop the JavaScript running now (reason 1: timeout), or have it
     * checked against `memory_limit` (reason 0; 0 bytes: no limit). */
    void (*interrupt)(BerthJSEngine *engine, int reason, size_t memory_limit);
    /* Why the last invoke/settle stopped early: 0 it did not, 1 timeout, 2 memory. */
    int (*terminated)(BerthJSEngine *engine);
    /* Once, at exit, after every engine was freed (JS_ShutDown). */
    void (*shutdown)(void);
    BerthJSBuffer *(*buffer_new)(void);
    void (*buffer_free)(BerthJSBuffer *buffer);
    void (*buffer_append)(BerthJSBuffer *buffer, const char *bytes, size_t length);
    const char *(*buffer_bytes)(BerthJSBuffer *buffer, size_t *length);
    void (*buffer_clear)(BerthJSBuffer *buffer);
} BerthJSAPI;

#define BERTH_JS_API_VERSION 2

/* The one symbol libBerthJS.so exports for the server. */
typedef const BerthJSAPI *(*BerthJSAPIFunction)(void);

#ifdef __cplusplus
}
#endif

#endif
