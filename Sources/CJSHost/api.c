// The header-only boundary to libBerthJS.so (see include/berth_js_api.h).
