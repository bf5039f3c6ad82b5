// The target is its header (berth_prefetch.h); SwiftPM wants one source file in a C target.
#include "berth_prefetch.h"
