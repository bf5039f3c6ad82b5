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

// The arguments a Call/Replicate format names (letters c s b l v), collected from the
// variadic list; the other letters are flags, copied to `flags`.
typedef struct FormatArgs {
    const char **argv;
    size_t *lens;
    char **owned;  // formatted integers, freed by format_args_free
    size_t argc, cap, owned_count;
} FormatArgs;

static void format_args_grow(FormatArgs *a, size_t need) {
    while (need > a->cap) {
        a->cap *= 2;
        a->argv = realloc(a->argv, a->cap * sizeof(*a->argv));
        a->lens = realloc(a->lens, a->cap * sizeof(*a->lens));
        a->owned = realloc(a->owned, a->cap * sizeof(*a->owned));
    }
}

// 0, or -1 when there are more flag letters than `flags` holds.
static int format_args_collect(FormatArgs *a, const char *fmt, va_list *ap, char *flags, size_t flags_cap) {
    a->cap = 16;
    a->argc = a->owned_count = 0;
    a->argv = malloc(a->cap * sizeof(*a->argv));
    a->lens = malloc(a->cap * sizeof(*a->lens));
    a->owned = malloc(a->cap * sizeof(*a->owned));
    size_t nflags = 0;
    for (const char *p = fmt; *p; p++) {
        format_args_grow(a, a->argc + 1);
        switch (*p) {
        case 'c': {
            const char *s = va_arg(*ap, const char *);
            a->argv[a->argc] = s;
            a->lens[a->argc++] = strlen(s);
            break;
        }
        case 's': {
            const void *s = va_arg(*ap, const void *);
            a->argv[a->argc] = helpers.string_ptr(s, &a->lens[a->argc]);
            a->argc++;
            break;
        }
        case 'b': {
            const char *b = va_arg(*ap, const char *);
            size_t n = va_arg(*ap, size_t);
            a->argv[a->argc] = b;
            a->lens[a->argc++] = n;
            break;
        }
        case 'l': {
            long long v = va_arg(*ap, long long);
            char *buf = malloc(24);
            snprintf(buf, 24, "%lld", v);
            a->owned[a->owned_count++] = buf;
            a->argv[a->argc] = buf;
            a->lens[a->argc++] = strlen(buf);
            break;
        }
        case 'v': {
            void **strs = va_arg(*ap, void **);
            size_t n = va_arg(*ap, size_t);
            format_args_grow(a, a->argc + n);
            for (size_t i = 0; i < n; i++) {
                a->argv[a->argc] = helpers.string_ptr(strs[i], &a->lens[a->argc]);
                a->argc++;
            }
            break;
        }
        default:
            if (nflags + 1 >= flags_cap) return -1;
            flags[nflags++] = *p;
        }
    }
    flags[nflags] = 0;
    return 0;
}

static void format_args_free(FormatArgs *a) {
    for (size_t i = 0; i < a->owned_count; i++) free(a->owned[i]);
    free(a->owned);
    free(a->argv);
    free(a->lens);
}

// Call(ctx, command, fmt, ...): fmt letters c s b l v name arguments; the other letters
// are flags, passed on to the engine.
static void *host_call(void *ctx, const char *command, const char *fmt, ...) {
    FormatArgs a;
    char flags[64];
    void *reply = NULL;
    va_list ap;
    va_start(ap, fmt);
    int bad = format_args_collect(&a, fmt, &ap, flags, sizeof(flags));
    va_end(ap);
    if (bad) errno = EINVAL;
    else reply = helpers.call(ctx, command, flags, a.argv, a.lens, (int)a.argc);
    format_args_free(&a);
    return reply;
}

// Replicate(ctx, command, fmt, ...): the command and its arguments join the effect stream
// (replicas and the AOF), checked as Redis checks them: a known command, and a format of
// argument letters and the target flags ! A R only.
static int host_replicate(void *ctx, const char *command, const char *fmt, ...) {
    for (const char *p = fmt; *p; p++) {
        if (!strchr("csblv!AR", *p)) return 1;
    }
    FormatArgs a;
    char flags[16];
    va_list ap;
    va_start(ap, fmt);
    int bad = format_args_collect(&a, fmt, &ap, flags, sizeof(flags));
    va_end(ap);
    int result = bad ? 1 : helpers.replicate(ctx, command, a.argv, a.lens, (int)a.argc);
    format_args_free(&a);
    return result;
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
