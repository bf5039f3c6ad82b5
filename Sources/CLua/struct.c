/*
 * The `struct` library Redis gives scripts: binary packing with a format string, as in
 * Roberto Ierusalimschy's struct library for Lua 5.1.
 *
 * Format: `<` little endian, `>` big endian, `!n` align fields to min(size, n) bytes (n a
 * power of two; `!` alone: the platform's largest alignment), ` ` ignored; `b`/`B` signed
 * and unsigned char, `h`/`H` short, `l`/`L` long, `T` size_t, `i`/`I` int with an
 * optional byte count (`i3`), `f` float, `d` double, `x` one zero byte, `c` a string of n
 * bytes (`c0`: pack the whole string; unpack a length taken from the previous value),
 * `s` a zero-terminated string. Uppercase integers are unsigned. Without `<`/`>` the
 * byte order is the machine's (little endian here), and alignment starts at 1.
 *
 * struct.pack(fmt, ...) -> string; struct.unpack(fmt, data [, pos]) -> values..., next
 * position (1-based); struct.size(fmt) -> bytes, refusing `s` and `c0`.
 */
#include <lua5.1/lauxlib.h>
#include <lua5.1/lua.h>

#include <ctype.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum { LITTLE = 0, BIG = 1, MAX_INT_SIZE = 32 };

// The strictest alignment any C type needs here.
#define MAX_ALIGN offsetof(struct { char c; union { double d; void *p; lua_Number n; long l; } u; }, u)

typedef struct {
    int endian;
    size_t align;
} Layout;

static int machine_endian(void) {
    const uint16_t probe = 1;
    return *(const unsigned char *)&probe == 1 ? LITTLE : BIG;
}

// Reads the decimal count after an option, or returns `fallback` when there is none.
static size_t read_count(lua_State *L, const char **fmt, size_t fallback) {
    if (!isdigit((unsigned char)**fmt)) return fallback;
    size_t n = 0;
    while (isdigit((unsigned char)**fmt)) {
        int digit = *(*fmt)++ - '0';
        if (n > (INT_MAX - (size_t)digit) / 10) luaL_error(L, "integral size overflow");
        n = n * 10 + (size_t)digit;
    }
    return n;
}

// The size in bytes of option `opt` (0 for control options and `s`).
static size_t option_size(lua_State *L, int opt, const char **fmt) {
    switch (opt) {
    case 'b': case 'B': case 'x': return 1;
    case 'h': case 'H': return sizeof(short);
    case 'l': case 'L': return sizeof(long);
    case 'T': return sizeof(size_t);
    case 'f': return sizeof(float);
    case 'd': return sizeof(double);
    case 'c': return read_count(L, fmt, 1);
    case 'i': case 'I': {
        size_t n = read_count(L, fmt, sizeof(int));
        if (n > MAX_INT_SIZE) luaL_error(L, "integral size %d is larger than limit of %d", (int)n, MAX_INT_SIZE);
        return n;
    }
    default: return 0;
    }
}

// Padding bytes before a field of `size` bytes at offset `at`.
static size_t padding(size_t at, const Layout *layout, int opt, size_t size) {
    if (size == 0 || opt == 'c') return 0;
    if (size > layout->align) size = layout->align;
    return (size - (at & (size - 1))) & (size - 1);
}

// Applies a control option (byte order, alignment, space); anything else is an error.
static void apply_control(lua_State *L, int opt, const char **fmt, Layout *layout) {
    switch (opt) {
    case ' ': return;
    case '>': layout->endian = BIG; return;
    case '<': layout->endian = LITTLE; return;
    case '!': {
        size_t a = read_count(L, fmt, MAX_ALIGN);
        if (a == 0 || (a & (a - 1)) != 0) luaL_error(L, "alignment %d is not a power of 2", (int)a);
        layout->align = a;
        return;
    }
    default: {
        const char *msg = lua_pushfstring(L, "invalid format option '%c'", opt);
        luaL_argerror(L, 1, msg);
    }
    }
}

static Layout default_layout(void) { return (Layout){machine_endian(), 1}; }

// Stores `size` bytes of `v` in `out` in the layout's byte order (bytes past 8 are zero).
static void store_integer(unsigned char *out, uint64_t v, int endian, size_t size) {
    for (size_t i = 0; i < size; i++) {
        unsigned char byte = i < 8 ? (unsigned char)(v >> (8 * i)) : 0;
        out[endian == LITTLE ? i : size - 1 - i] = byte;
    }
}

static lua_Number load_integer(const unsigned char *in, int endian, int is_signed, size_t size) {
    uint64_t v = 0;
    for (size_t i = 0; i < size; i++) {
        unsigned char byte = in[endian == LITTLE ? size - 1 - i : i];
        v = (v << 8) | byte;
    }
    if (is_signed && size > 0 && size <= 8) {
        uint64_t sign = (uint64_t)1 << (size * 8 - 1);
        if (v & sign) v |= ~(uint64_t)0 << (size * 8 - 1);
        return (lua_Number)(int64_t)v;
    }
    return (lua_Number)v;
}

// Floats are stored in machine order; reverse them when the layout asks the other one.
static void fix_order(unsigned char *bytes, size_t size, int endian) {
    if (endian == machine_endian()) return;
    for (size_t i = 0; i < size / 2; i++) {
        unsigned char t = bytes[i];
        bytes[i] = bytes[size - 1 - i];
        bytes[size - 1 - i] = t;
    }
}

static int struct_pack(lua_State *L) {
    const char *fmt = luaL_checkstring(L, 1);
    Layout layout = default_layout();
    int arg = 2;
    size_t total = 0;
    luaL_Buffer b;
    lua_pushnil(L);  // keeps the buffer's stack slots apart from the arguments
    luaL_buffinit(L, &b);
    while (*fmt) {
        int opt = *fmt++;
        size_t size = option_size(L, opt, &fmt);
        size_t pad = padding(total, &layout, opt, size);
        total += pad;
        while (pad-- > 0) luaL_addchar(&b, '\0');
        switch (opt) {
        case 'b': case 'B': case 'h': case 'H': case 'l': case 'L': case 'T': case 'i': case 'I': {
            lua_Number n = luaL_checknumber(L, arg++);
            uint64_t v = n < 0 ? (uint64_t)(int64_t)n : (uint64_t)n;
            unsigned char bytes[MAX_INT_SIZE];
            store_integer(bytes, v, layout.endian, size);
            luaL_addlstring(&b, (const char *)bytes, size);
            break;
        }
        case 'x': luaL_addchar(&b, '\0'); break;
        case 'f': {
            float f = (float)luaL_checknumber(L, arg++);
            fix_order((unsigned char *)&f, sizeof f, layout.endian);
            luaL_addlstring(&b, (const char *)&f, sizeof f);
            break;
        }
        case 'd': {
            double d = luaL_checknumber(L, arg++);
            fix_order((unsigned char *)&d, sizeof d, layout.endian);
            luaL_addlstring(&b, (const char *)&d, sizeof d);
            break;
        }
        case 'c': case 's': {
            size_t length;
            const char *s = luaL_checklstring(L, arg++, &length);
            if (size == 0) size = length;
            luaL_argcheck(L, length >= size, arg, "string too short");
            luaL_addlstring(&b, s, size);
            if (opt == 's') {
                luaL_addchar(&b, '\0');
                size++;
            }
            break;
        }
        default: apply_control(L, opt, &fmt, &layout);
        }
        total += size;
    }
    luaL_pushresult(&b);
    return 1;
}

static int struct_unpack(lua_State *L) {
    const char *fmt = luaL_checkstring(L, 1);
    size_t length;
    const unsigned char *data = (const unsigned char *)luaL_checklstring(L, 2, &length);
    lua_Integer start = luaL_optinteger(L, 3, 1);
    luaL_argcheck(L, start > 0, 3, "offset must be 1 or greater");
    size_t pos = (size_t)start - 1;
    Layout layout = default_layout();
    int results = 0;
    while (*fmt) {
        int opt = *fmt++;
        size_t size = option_size(L, opt, &fmt);
        pos += padding(pos, &layout, opt, size);
        luaL_argcheck(L, size <= length && pos <= length - size, 2, "data string too short");
        luaL_checkstack(L, 2, "too many results");
        switch (opt) {
        case 'b': case 'B': case 'h': case 'H': case 'l': case 'L': case 'T': case 'i': case 'I':
            lua_pushnumber(L, load_integer(data + pos, layout.endian, islower(opt), size));
            results++;
            break;
        case 'x': break;
        case 'f':
        case 'd': {
            // Floats are kept in machine order: copy, put right, then read.
            unsigned char bytes[sizeof(double)];
            memcpy(bytes, data + pos, size);
            fix_order(bytes, size, layout.endian);
            float f;
            double d;
            if (opt == 'f') memcpy(&f, bytes, sizeof f);
            else memcpy(&d, bytes, sizeof d);
            lua_pushnumber(L, opt == 'f' ? (lua_Number)f : d);
            results++;
            break;
        }
        case 'c':
            if (size == 0) {
                // The length is the value unpacked just before.
                if (results == 0 || !lua_isnumber(L, -1)) luaL_error(L, "format 'c0' needs a previous size");
                size = (size_t)lua_tonumber(L, -1);
                lua_pop(L, 1);
                results--;
                luaL_argcheck(L, size <= length && pos <= length - size, 2, "data string too short");
            }
            lua_pushlstring(L, (const char *)data + pos, size);
            results++;
            break;
        case 's': {
            const unsigned char *end = memchr(data + pos, '\0', length - pos);
            if (!end) luaL_error(L, "unfinished string in data");
            size = (size_t)(end - (data + pos)) + 1;
            lua_pushlstring(L, (const char *)data + pos, size - 1);
            results++;
            break;
        }
        default: apply_control(L, opt, &fmt, &layout);
        }
        pos += size;
    }
    lua_pushinteger(L, (lua_Integer)pos + 1);
    return results + 1;
}

static int struct_size(lua_State *L) {
    const char *fmt = luaL_checkstring(L, 1);
    Layout layout = default_layout();
    size_t pos = 0;
    while (*fmt) {
        int opt = *fmt++;
        size_t size = option_size(L, opt, &fmt);
        pos += padding(pos, &layout, opt, size);
        if (opt == 's') luaL_argerror(L, 1, "option 's' has no fixed size");
        else if (opt == 'c' && size == 0) luaL_argerror(L, 1, "option 'c0' has no fixed size");
        if (!isalnum(opt)) apply_control(L, opt, &fmt, &layout);
        pos += size;
    }
    lua_pushinteger(L, (lua_Integer)pos);
    return 1;
}

int berth_luaopen_struct(lua_State *L) {
    lua_newtable(L);
    lua_pushcfunction(L, struct_pack);
    lua_setfield(L, -2, "pack");
    lua_pushcfunction(L, struct_unpack);
    lua_setfield(L, -2, "unpack");
    lua_pushcfunction(L, struct_size);
    lua_setfield(L, -2, "size");
    return 1;
}
