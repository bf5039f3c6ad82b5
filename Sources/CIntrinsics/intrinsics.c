// The target is its header (berth_intrinsics.h); SwiftPM wants one source file in a C target.
#include "berth_intrinsics.h"
