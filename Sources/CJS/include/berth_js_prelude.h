#pragma once
// The JavaScript source of the `redis` object and client objects (prelude.cpp).
extern const char *const berth_js_prelude;
