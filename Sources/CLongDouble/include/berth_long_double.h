#ifndef BERTH_LONG_DOUBLE_H
#define BERTH_LONG_DOUBLE_H

#include <stddef.h>

/// INCRBYFLOAT and HINCRBYFLOAT compute in C's `long double` (80-bit on x86-64) and print
/// the sum with 17 decimals, trailing zeros removed, so `0.1` plus `0.2` reads back as
/// `0.3` and sums past 2^53 keep their integer digits. Swift has no portable long double,
/// so the numbers never leave C: callers pass and receive text.

/// What `berth_long_double_parse` found in a string.
typedef enum {
    BERTH_LD_INVALID = 0,  ///< not a float: empty, spaces, trailing bytes, NaN, out of range
    BERTH_LD_FINITE = 1,
    BERTH_LD_INFINITE = 2,
} berth_ld_kind;

/// Classifies `length` bytes at `text` as Redis's string-to-long-double conversion would:
/// strtold's syntax (decimal, exponent, hexadecimal, "inf"), no leading space, nothing
/// after the number, no NaN, and no overflow or underflow to zero.
berth_ld_kind berth_long_double_parse(const char *text, size_t length);

/// Adds two strings that `berth_long_double_parse` accepted and writes the sum's text to
/// `out` (no terminator). Returns its length, or -1 when the sum is NaN or infinite, or
/// -2 when `capacity` is too small (BERTH_LD_MAX_CHARS always suffices).
long berth_long_double_add(const char *a, size_t a_length, const char *b, size_t b_length,
                           char *out, size_t capacity);

/// Room for any finite long double printed with 17 decimals.
#define BERTH_LD_MAX_CHARS 5120

#endif
