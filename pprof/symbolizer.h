// In-process symbolization for profiles: the loaded objects (with their GNU
// build ids) from dl_iterate_phdr, and function names from each object's ELF
// symbol table (.symtab, else .dynsym), demangled. A profile written with
// these names reads on a machine without the binaries; the build ids let
// pprof symbolize again where the binaries are.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace assay::pprof {

struct ObjectMapping {
  uintptr_t start = 0;  // executable segment, in memory
  uintptr_t limit = 0;
  uint64_t file_offset = 0;
  uintptr_t bias = 0;    // load bias: memory address - ELF virtual address
  std::string file;      // path ("" for the vdso)
  std::string build_id;  // lowercase hex, or ""
};

// The executable segments of every loaded object, the main program first.
std::vector<ObjectMapping> ReadMappings();

class Symbolizer {
 public:
  explicit Symbolizer(const std::vector<ObjectMapping>* mappings);
  ~Symbolizer();
  Symbolizer(const Symbolizer&) = delete;
  Symbolizer& operator=(const Symbolizer&) = delete;

  // The mapping holding pc (index into mappings), or -1.
  int MappingOf(uintptr_t pc) const;
  // Demangled and raw name of the function holding pc, and its first byte
  // (in memory) when start is given; false if unknown.
  bool Lookup(uintptr_t pc, std::string* name, std::string* system_name,
              uintptr_t* start = nullptr);

 private:
  struct Symbol {
    uintptr_t start;  // in memory
    uintptr_t size;
    const char* name;  // into the object's string table (kept mapped)
  };
  struct ObjectSymbols;
  ObjectSymbols* Load(int mapping);

  const std::vector<ObjectMapping>* mappings_;
  std::vector<std::unique_ptr<ObjectSymbols>> objects_;  // per mapping, loaded lazily
};

}  // namespace assay::pprof
