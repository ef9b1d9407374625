// The pprof writer plugin (libassay_pprof.so, pprof/): found beside
// libassay.so (or in assay/ beside it, where an install puts it) and loaded
// with RTLD_LOCAL at the first profile write, so its protobuf never joins the
// program's symbol scope; the static library links the writer's objects in
// instead (a weak symbol).
#pragma once

#include <cstddef>
#include <string>

#include "profiler/profile_data.h"

namespace assay::profiler::plugin {

// Hands data to the writer, loading it first; 0, or an errno value with the
// reason in *error. Callers serialise calls (the dumper's lock).
int CallWriter(const AssayProfileData& data, const char* path, std::string* error);

// The same profile as gzipped pprof bytes into *out (cleared first); 0, or
// an errno value with the reason in *error. Callers serialise calls.
int CallSerializer(const AssayProfileData& data, std::string* out, std::string* error);

// A symbol of libassay_pprof.so (loading it first if may_load), or nullptr
// when it is not loaded or cannot be. Callers serialise loading.
void* Symbol(const char* name, bool may_load);

}  // namespace assay::profiler::plugin
