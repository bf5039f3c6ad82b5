// The C half of Berth's module host: API lookup by name and the variadic API functions.
#include "berth_module_host.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_API 512

static struct {
    const char *name;
    void *fn;
} api[MAX_API];
static int api_count;
static BerthModuleHelpers helpers;

void berth_module_register(const char *name, void *fn) {
    for (int i = 0; i < api_count; i++) {
        if (strcmp(api[i].name, name) == 0) {
            api[i].fn = fn;
            return;
        }
    }
    if (api_count < MAX_API) {
        api[api_count].name = name;
        api[api_count].fn = fn;
        api_count++;
    }
}

int berth_module_api_count(void) { return api_count; }

int berth_module_get_api(const char *name, void *target) {
    static const char *prefixes[] = {"RedisModule_", "ValkeyModule_"};
    for (size_t p = 0; p < 2; p++) {
        size_t n = strlen(prefixes[p]);
        if (strncmp(name, prefixes[p], n) != 0) continue;
        const char *bare = name + n;
        for (int i = 0; i < api_count; i++) {
            if (strcmp(api[i].name, bare) == 0) {
                *(void **)target = api[i].fn;
                return 0;
            }
        }
        break;
    }
    // The target is left as it was (NULL in a module's Init), as Redis does.
    if (helpers.missing_api) helpers.missing_api(name);
    return 1;
}

// A formatted message in a heap buffer the caller frees.
static char *format(const char *fmt, va_list ap) {
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0) return NULL;
    char *buf = malloc((size_t)n + 1);
    if (buf) vsnprintf(buf, (size_t)n + 1, fmt, ap);
    return buf;
}

static void host_log(void *ctx, const char *level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *msg = format(fmt, ap);
    va_end(ap);
    if (msg) {
        helpers.log(ctx, level, msg);
        free(msg);
    }
}

static void *host_create_string_printf(void *ctx, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *msg = format(fmt, ap);
    va_end(ap);
    if (!msg) return NULL;
    void *s = helpers.create_string(ctx, msg, strlen(msg));
    free(msg);
    return s;
}

static int host_reply_with_error_format(void *ctx, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *msg = format(fmt, ap);
    va_end(ap);
    if (!msg) return 1;
    // Like ReplyWithError, but the message may contain any byte except newlines.
    for (char *c = msg; *c; c++)
        if (*c == '\r' || *c == '\n') *c = ' ';
    int r = helpers.reply_error(ctx, msg);
    free(msg);
    return r;
}

// Call(ctx, command, fmt, ...): fmt letters c s b l v name arguments; the other letters
// are flags, passed on to the engine.
static void *host_call(void *ctx, const char *command, const char *fmt, ...) {
    size_t cap = 16, argc = 0;
    const char **argv = malloc(cap * sizeof(*argv));
    size_t *lens = malloc(cap * sizeof(*lens));
    char **owned = malloc(cap * sizeof(*owned));  // formatted integers, freed at the end
    size_t owned_count = 0;
    char flags[64];
    size_t nflags = 0;
    void *reply = NULL;
    int bad = 0;
    va_list ap;
    va_start(ap, fmt);
    for (const char *p = fmt; *p && !bad; p++) {
        size_t need = argc + 1;
        if (*p == 'v') need = argc + 0;  // grown below once the count is known
        if (need > cap) {
            cap *= 2;
            argv = realloc(argv, cap * sizeof(*argv));
            lens = realloc(lens, cap * sizeof(*lens));
            owned = realloc(owned, cap * sizeof(*owned));
        }
        switch (*p) {
        case 'c': {
            const char *s = va_arg(ap, const char *);
            argv[argc] = s;
            lens[argc++] = strlen(s);
            break;
        }
        case 's': {
            const void *s = va_arg(ap, const void *);
            argv[argc] = helpers.string_ptr(s, &lens[argc]);
            argc++;
            break;
        }
        case 'b': {
            const char *b = va_arg(ap, const char *);
            size_t n = va_arg(ap, size_t);
            argv[argc] = b;
            lens[argc++] = n;
            break;
        }
        case 'l': {
            long long v = va_arg(ap, long long);
            char *buf = malloc(24);
            snprintf(buf, 24, "%lld", v);
            owned[owned_count++] = buf;
            argv[argc] = buf;
            lens[argc++] = strlen(buf);
            break;
        }
        case 'v': {
            void **strs = va_arg(ap, void **);
            size_t n = va_arg(ap, size_t);
            while (argc + n > cap) {
                cap *= 2;
                argv = realloc(argv, cap * sizeof(*argv));
                lens = realloc(lens, cap * sizeof(*lens));
                owned = realloc(owned, cap * sizeof(*owned));
            }
            for (size_t i = 0; i < n; i++) {
                argv[argc] = helpers.string_ptr(strs[i], &lens[argc]);
                argc++;
            }
            break;
        }
        default:
            if (nflags + 1 < sizeof(flags)) flags[nflags++] = *p;
            else bad = 1;
        }
    }
    va_end(ap);
    flags[nflags] = 0;
    if (bad) errno = EINVAL;
    else reply = helpers.call(ctx, command, flags, argv, lens, (int)argc);
    for (size_t i = 0; i < owned_count; i++) free(owned[i]);
    free(owned);
    free(argv);
    free(lens);
    return reply;
}

// Counts the arguments a Call/Replicate format describes (letters c s b l; v is a vector
// whose length follows it), consuming them from `ap`. -1 for a letter that names no
// argument and is not one of Redis's flag letters.
static int count_format_arguments(const char *fmt, va_list ap) {
    int argc = 0;
    for (const char *p = fmt; *p; p++) {
        switch (*p) {
        case 'c': (void)va_arg(ap, const char *); argc++; break;
        case 's': (void)va_arg(ap, const void *); argc++; break;
        case 'b': (void)va_arg(ap, const char *); (void)va_arg(ap, size_t); argc++; break;
        case 'l': (void)va_arg(ap, long long); argc++; break;
        case 'v': (void)va_arg(ap, void **); argc += (int)va_arg(ap, size_t); break;
        case '!': case 'A': case 'R': break;  // Replicate's target flags
        default: return -1;
        }
    }
    return argc;
}

// Replicate(ctx, command, fmt, ...): Berth has no replicas or AOF, so there is nothing to
// send; the call is checked as Redis checks it (known command, valid format) and counted.
static int host_replicate(void *ctx, const char *command, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int argc = count_format_arguments(fmt, ap);
    va_end(ap);
    if (argc < 0) return 1;
    return helpers.replicate(ctx, command, argc);
}

// EmitAOF(io, command, fmt, ...): only reachable from a data type's aof_rewrite callback,
// which Berth never calls (it has no AOF).
static void host_emit_aof(void *io, const char *command, const char *fmt, ...) {
    (void)io;
    (void)command;
    (void)fmt;
}

void berth_module_set_helpers(BerthModuleHelpers h) {
    helpers = h;
    berth_module_register("Log", (void *)host_log);
    berth_module_register("CreateStringPrintf", (void *)host_create_string_printf);
    berth_module_register("ReplyWithErrorFormat", (void *)host_reply_with_error_format);
    berth_module_register("Call", (void *)host_call);
    berth_module_register("Replicate", (void *)host_replicate);
    berth_module_register("EmitAOF", (void *)host_emit_aof);
}
