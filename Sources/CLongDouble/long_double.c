#include "berth_long_double.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Reads a NUL-terminated copy of the text; 0 when it is not a long double.
static int read_long_double(const char *text, size_t length, long double *value) {
    char buffer[BERTH_LD_MAX_CHARS];
    if (length == 0 || length >= sizeof buffer) return 0;
    memcpy(buffer, text, length);
    buffer[length] = '\0';
    if (isspace((unsigned char)buffer[0])) return 0;
    char *end = NULL;
    errno = 0;
    long double v = strtold(buffer, &end);
    // The whole text must be the number: an embedded NUL ends strtold early.
    if (end != buffer + length || errno == EINVAL || isnan(v)) return 0;
    if (errno == ERANGE && (v == HUGE_VALL || v == -HUGE_VALL || fpclassify(v) == FP_ZERO)) return 0;
    *value = v;
    return 1;
}

berth_ld_kind berth_long_double_parse(const char *text, size_t length) {
    long double v;
    if (!read_long_double(text, length, &v)) return BERTH_LD_INVALID;
    return isinf(v) ? BERTH_LD_INFINITE : BERTH_LD_FINITE;
}

long berth_long_double_add(const char *a, size_t a_length, const char *b, size_t b_length,
                           char *out, size_t capacity) {
    long double x, y;
    if (!read_long_double(a, a_length, &x) || !read_long_double(b, b_length, &y)) return -1;
    long double sum = x + y;
    if (isnan(sum) || isinf(sum)) return -1;
    char text[BERTH_LD_MAX_CHARS + 32];
    int n = snprintf(text, sizeof text, "%.17Lf", sum);
    if (n < 0 || (size_t)n >= sizeof text) return -2;
    // "%.17Lf" always has a point: drop the zeros after it, then a bare point.
    while (text[n - 1] == '0') n--;
    if (text[n - 1] == '.') n--;
    if (n == 2 && text[0] == '-' && text[1] == '0') { text[0] = '0'; n = 1; }
    if ((size_t)n > capacity) return -2;
    memcpy(out, text, (size_t)n);
    return n;
}
