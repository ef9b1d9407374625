// Object caches (<assay/cache.h>): the part the rest of the library sees.
#pragma once

#include <cstdio>

namespace assay::internal::object_cache {

// One line per cache (name, object size, objects constructed, in use and
// free, constructor and destructor calls), for assay_stats_print.
void PrintStats(FILE* f);

}  // namespace assay::internal::object_cache
