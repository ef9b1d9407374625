// Symbolizer (symbolizer.h): ELF symbol tables read from the mapped files.
#include "pprof/symbolizer.h"

#include <cxxabi.h>
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace assay::pprof {
namespace {

std::string Hex(const unsigned char* p, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    s.push_back(kDigits[p[i] >> 4]);
    s.push_back(kDigits[p[i] & 15]);
  }
  return s;
}

// The GNU build id from the object's PT_NOTE segments, already in memory.
std::string BuildId(const dl_phdr_info* info) {
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_NOTE) continue;
    const char* p = reinterpret_cast<const char*>(info->dlpi_addr + ph.p_vaddr);
    const char* end = p + ph.p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      const auto* nh = reinterpret_cast<const ElfW(Nhdr)*>(p);
      const char* name = p + sizeof(ElfW(Nhdr));
      const char* desc = name + ((nh->n_namesz + 3) & ~3u);
      if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && std::memcmp(name, "GNU", 4) == 0) {
        return Hex(reinterpret_cast<const unsigned char*>(desc), nh->n_descsz);
      }
      p = desc + ((nh->n_descsz + 3) & ~3u);
    }
  }
  return "";
}

std::string MainProgramPath() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

int CollectMapping(dl_phdr_info* info, size_t, void* arg) {
  auto* out = static_cast<std::vector<ObjectMapping>*>(arg);
  const bool main_program = out->empty();
  std::string file = info->dlpi_name != nullptr ? info->dlpi_name : "";
  if (main_program && file.empty()) file = MainProgramPath();
  const std::string build_id = BuildId(info);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
    ObjectMapping m;
    m.bias = info->dlpi_addr;
    m.start = info->dlpi_addr + ph.p_vaddr;
    m.limit = m.start + ph.p_memsz;
    m.file_offset = ph.p_offset;
    m.file = file;
    m.build_id = build_id;
    out->push_back(std::move(m));
  }
  return 0;
}

}  // namespace

std::vector<ObjectMapping> ReadMappings() {
  std::vector<ObjectMapping> out;
  dl_iterate_phdr(CollectMapping, &out);
  return out;
}

struct Symbolizer::ObjectSymbols {
  void* map = nullptr;  // the file, mapped read-only (names point into it)
  size_t map_size = 0;
  std::vector<Symbol> symbols;  // sorted by start
  ~ObjectSymbols() {
    if (map != nullptr) munmap(map, map_size);
  }
};

Symbolizer::Symbolizer(const std::vector<ObjectMapping>* mappings)
    : mappings_(mappings), objects_(mappings->size()) {}

Symbolizer::~Symbolizer() = default;

int Symbolizer::MappingOf(uintptr_t pc) const {
  for (size_t i = 0; i < mappings_->size(); ++i) {
    const ObjectMapping& m = (*mappings_)[i];
    if (pc >= m.start && pc < m.limit) return static_cast<int>(i);
  }
  return -1;
}

Symbolizer::ObjectSymbols* Symbolizer::Load(int mapping) {
  if (objects_[mapping] != nullptr) return objects_[mapping].get();
  auto obj = std::make_unique<ObjectSymbols>();
  const ObjectMapping& m = (*mappings_)[mapping];
  // Several executable segments of one object share its symbols.
  for (size_t i = 0; i < objects_.size(); ++i) {
    if (objects_[i] != nullptr && (*mappings_)[i].file == m.file &&
        (*mappings_)[i].bias == m.bias) {
      objects_[mapping].reset();  // stays null: look up through i
      return objects_[i].get();
    }
  }
  const int fd = m.file.empty() ? -1 : open(m.file.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size > static_cast<off_t>(sizeof(ElfW(Ehdr)))) {
    void* p = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (p != MAP_FAILED) {
      obj->map = p;
      obj->map_size = static_cast<size_t>(st.st_size);
    }
  }
  if (fd >= 0) close(fd);
  const auto* base = static_cast<const char*>(obj->map);
  const auto* eh = reinterpret_cast<const ElfW(Ehdr)*>(base);
  if (base != nullptr && std::memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 &&
      eh->e_ident[EI_CLASS] == ELFCLASS64 && eh->e_shoff != 0 &&
      eh->e_shoff + eh->e_shnum * sizeof(ElfW(Shdr)) <= obj->map_size) {
    const auto* sh = reinterpret_cast<const ElfW(Shdr)*>(base + eh->e_shoff);
    const ElfW(Shdr)* table = nullptr;
    for (int pass = 0; pass < 2 && table == nullptr; ++pass) {
      const uint32_t want = pass == 0 ? SHT_SYMTAB : SHT_DYNSYM;
      for (int i = 0; i < eh->e_shnum; ++i) {
        if (sh[i].sh_type == want) table = &sh[i];
      }
    }
    if (table != nullptr && table->sh_link < eh->e_shnum &&
        table->sh_offset + table->sh_size <= obj->map_size) {
      const ElfW(Shdr)& strs = sh[table->sh_link];
      const auto* syms = reinterpret_cast<const ElfW(Sym)*>(base + table->sh_offset);
      const size_t n = table->sh_size / sizeof(ElfW(Sym));
      for (size_t i = 0; i < n; ++i) {
        const int type = ELF64_ST_TYPE(syms[i].st_info);
        if ((type != STT_FUNC && type != STT_GNU_IFUNC) || syms[i].st_value == 0 ||
            syms[i].st_name >= strs.sh_size) {
          continue;
        }
        obj->symbols.push_back(Symbol{m.bias + syms[i].st_value, syms[i].st_size,
                                      base + strs.sh_offset + syms[i].st_name});
      }
      std::sort(obj->symbols.begin(), obj->symbols.end(),
                [](const Symbol& a, const Symbol& b) { return a.start < b.start; });
    }
  }
  objects_[mapping] = std::move(obj);
  return objects_[mapping].get();
}

bool Symbolizer::Lookup(uintptr_t pc, std::string* name, std::string* system_name,
                        uintptr_t* start) {
  const char* raw = nullptr;
  uintptr_t first = 0;
  const int mapping = MappingOf(pc);
  if (mapping >= 0) {
    const ObjectSymbols* obj = Load(mapping);
    if (obj != nullptr && !obj->symbols.empty()) {
      auto it = std::upper_bound(obj->symbols.begin(), obj->symbols.end(), pc,
                                 [](uintptr_t v, const Symbol& s) { return v < s.start; });
      if (it != obj->symbols.begin()) {
        --it;
        if (it->size == 0 || pc < it->start + it->size) {
          raw = it->name;
          first = it->start;
        }
      }
    }
  }
  if (raw == nullptr) {  // not in the file's tables: ask the dynamic linker
    Dl_info info;
    if (dladdr(reinterpret_cast<void*>(pc), &info) != 0 && info.dli_sname != nullptr) {
      raw = info.dli_sname;
      first = reinterpret_cast<uintptr_t>(info.dli_saddr);
    }
  }
  if (raw == nullptr) return false;
  if (start != nullptr) *start = first;
  *system_name = raw;
  int status = 0;
  char* demangled = abi::__cxa_demangle(raw, nullptr, nullptr, &status);
  if (status == 0 && demangled != nullptr) {
    *name = demangled;
  } else {
    *name = raw;
  }
  std::free(demangled);
  return true;
}

}  // namespace assay::pprof
