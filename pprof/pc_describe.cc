// assay_pprof_describe_pc: one program counter as "function (file+0xoffset)"
// for the debug heap's reports, with the same in-process symbolizer the
// profiles use (ELF .symtab, so static functions are named too, demangled).
// Lives in libassay_pprof.so beside the writer: the allocator core has no
// C++ library to call.
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "pprof/symbolizer.h"

namespace {

std::mutex g_mu;
std::vector<assay::pprof::ObjectMapping>* g_mappings = nullptr;  // never freed: reports run late
assay::pprof::Symbolizer* g_symbolizer = nullptr;

}  // namespace

extern "C" __attribute__((visibility("default"))) int assay_pprof_describe_pc(uintptr_t pc,
                                                                              char* out,
                                                                              size_t outlen) {
  try {
    std::lock_guard<std::mutex> lock(g_mu);
    if (g_symbolizer == nullptr || g_symbolizer->MappingOf(pc) < 0) {
      // First use, or an object loaded since: read the mappings again.
      delete g_symbolizer;
      delete g_mappings;
      g_mappings = new std::vector<assay::pprof::ObjectMapping>(assay::pprof::ReadMappings());
      g_symbolizer = new assay::pprof::Symbolizer(g_mappings);
    }
    const int m = g_symbolizer->MappingOf(pc);
    std::string name, raw;
    const bool named = g_symbolizer->Lookup(pc, &name, &raw);
    const char* file = m >= 0 ? (*g_mappings)[m].file.c_str() : "";
    const unsigned long offset =
        m >= 0 ? static_cast<unsigned long>(pc - (*g_mappings)[m].bias) : 0;
    int n;
    if (named) {
      n = snprintf(out, outlen, "%s (%s+0x%lx)", name.c_str(), file, offset);
    } else if (m >= 0) {
      n = snprintf(out, outlen, "(%s+0x%lx)", file, offset);
    } else {
      return -1;
    }
    return n < 0 ? -1 : 0;
  } catch (...) {
    return -1;
  }
}
