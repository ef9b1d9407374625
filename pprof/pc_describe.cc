// assay_pprof_describe_frame / assay_pprof_describe_pc (describe.h): program
// counters as text for the debug heap's reports, with the profiles'
// symbolizer (ELF .symtab names, demangled; DWARF files, lines and inlined
// calls, source_lines.h). Lives in libassay_pprof.so beside the writer: the
// allocator core has no C++ library (nor libdw) to call.
#include <cstdio>
#include <string>

#include "pprof/describe.h"
#include "pprof/source_lines.h"

namespace {

using assay::pprof::PcSource;
using assay::pprof::ScopedSourceSymbolizer;
using assay::pprof::SourceFrame;

int Describe(uintptr_t pc, int index, char* out, size_t outlen) {
  try {
    ScopedSourceSymbolizer s;
    if (s.get() == nullptr || index < 0) return -1;
    const int m = s->MappingOf(pc);
    if (m < 0) return -1;
    const assay::pprof::ObjectMapping& mapping = s->Mappings()[static_cast<size_t>(m)];
    const PcSource& src = s->Lookup(pc);
    const int count = src.frames.empty() ? 1 : static_cast<int>(src.frames.size());
    if (index >= count) return 0;
    const char* object = mapping.file.c_str();
    const SourceFrame* f = src.frames.empty() ? nullptr : &src.frames[static_cast<size_t>(index)];
    std::string where;
    if (f != nullptr && !f->file->empty())
      where = " at " + *f->file + ":" + std::to_string(f->line);
    const bool last = index == count - 1;
    int n;
    if (f == nullptr || f->name->empty()) {
      n = snprintf(out, outlen, "(%s+0x%lx)%s%s", object,
                   static_cast<unsigned long>(pc - mapping.bias), where.c_str(),
                   last ? "" : " (inlined)");
    } else if (last && src.symbol_start != 0 && pc >= src.symbol_start) {
      n = snprintf(out, outlen, "%s+0x%lx (%s)%s", f->name->c_str(),
                   static_cast<unsigned long>(pc - src.symbol_start), object, where.c_str());
    } else {
      n = snprintf(out, outlen, "%s (%s)%s%s", f->name->c_str(), object, where.c_str(),
                   last ? "" : " (inlined)");
    }
    return n < 0 ? -1 : count;
  } catch (...) {
    return -1;
  }
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int assay_pprof_describe_frame(uintptr_t pc,
                                                                                 int index,
                                                                                 char* out,
                                                                                 size_t outlen) {
  return Describe(pc, index, out, outlen);
}

extern "C" __attribute__((visibility("default"))) int assay_pprof_describe_pc(uintptr_t pc,
                                                                              char* out,
                                                                              size_t outlen) {
  // The last frame: find the count first.
  char scratch[8];
  const int count = Describe(pc, 0, scratch, sizeof(scratch));
  if (count <= 0) return -1;
  return Describe(pc, count - 1, out, outlen) > 0 ? 0 : -1;
}
