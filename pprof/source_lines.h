// Source lines for program counters: one process-wide session of elfutils'
// libdwfl over the loaded objects (kept open between dumps, refreshed when
// dlopen/dlclose changed them), DWARF line tables and inlined-call scopes
// (the objects' own or their separate debug files: .gnu_debuglink,
// /usr/lib/debug/.build-id), function names from the ELF symbol tables
// (symbolizer.h), and a bounded per-pc cache of the answers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "pprof/symbolizer.h"

namespace assay::pprof {

// One frame at a pc. Strings point into the symbolizer's pool: valid until
// the next Acquire.
struct SourceFrame {
  const std::string* name;         // demangled; "" when unknown
  const std::string* system_name;  // as in the object (mangled); "" when unknown
  const std::string* file;         // source file; "" without DWARF
  int64_t line = 0;                // 0 without DWARF
  int64_t start_line = 0;          // the function's declaration line, or 0
};

struct PcSource {
  // Innermost first: inlined functions, then the function whose code holds
  // the pc (the last). Empty when nothing is known of the pc.
  std::vector<SourceFrame> frames;
  bool dwarf = false;          // frames come from DWARF (file, line, inline frames)
  uintptr_t symbol_start = 0;  // first byte of the last frame's symbol, or 0
};

class SourceSymbolizer {
 public:
  // The process's symbolizer, locked for this thread, its mappings brought
  // up to date; nullptr when this thread already holds it (a report raised
  // from inside a dump). Release it with Release().
  static SourceSymbolizer* Acquire();
  void Release();

  // The executable segments of the loaded objects, main program first.
  const std::vector<ObjectMapping>& Mappings() const { return mappings_; }
  int MappingOf(uintptr_t pc) const { return symbols_->MappingOf(pc); }
  // What is known of pc (the address of an instruction, not a return
  // address): cached.
  const PcSource& Lookup(uintptr_t pc);

  // Cache bound, in pcs: a dump that finds the cache past it empties it first.
  static constexpr size_t kMaxCachedPcs = 1 << 16;

 private:
  struct Session;
  SourceSymbolizer();
  void Refresh();
  void Resolve(uintptr_t pc, PcSource* out);
  const std::string* Intern(const std::string& s);

  std::vector<ObjectMapping> mappings_;
  std::unique_ptr<Symbolizer> symbols_;
  std::unique_ptr<Session> dwfl_;
  unsigned long long adds_ = 0, subs_ = 0;  // dl_iterate_phdr's counters at the last refresh
  bool loaded_ = false;
  std::unordered_map<uintptr_t, PcSource> cache_;
  std::unordered_set<std::string> pool_;  // names and files of the cached frames
};

// RAII for Acquire/Release.
class ScopedSourceSymbolizer {
 public:
  ScopedSourceSymbolizer() : s_(SourceSymbolizer::Acquire()) {}
  ~ScopedSourceSymbolizer() {
    if (s_ != nullptr) s_->Release();
  }
  ScopedSourceSymbolizer(const ScopedSourceSymbolizer&) = delete;
  ScopedSourceSymbolizer& operator=(const ScopedSourceSymbolizer&) = delete;
  SourceSymbolizer* get() const { return s_; }
  SourceSymbolizer* operator->() const { return s_; }

 private:
  SourceSymbolizer* s_;
};

}  // namespace assay::pprof
