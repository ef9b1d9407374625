// SourceSymbolizer (source_lines.h): libdwfl over the live process's objects.
// Lookups walk the DWARF scopes at the pc (dwarf_getscopes) for inlined
// calls; each costs a walk of the pc's compilation unit, hence the cache.
#include "pprof/source_lines.h"

#include <cxxabi.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <link.h>

#include <cstddef>
#include <cstdlib>
#include <mutex>

namespace assay::pprof {
namespace {

// Guards the instance. Taken by profile writes (under the dumper's lock,
// which its fork handler holds across fork, so no write is in progress then:
// a fork handler of ours would invert the two locks) and by reports.
std::mutex g_mu;
thread_local bool t_held = false;        // this thread holds g_mu
SourceSymbolizer* g_instance = nullptr;  // never freed: reports run late
char* g_debuginfo_path = nullptr;        // libdwfl's default search path
const Dwfl_Callbacks kCallbacks = {
    .find_elf = dwfl_linux_proc_find_elf,  // unused: every module is reported with its file
    .find_debuginfo = dwfl_standard_find_debuginfo,  // .gnu_debuglink, /usr/lib/debug/.build-id
    .section_address = dwfl_offline_section_address,
    .debuginfo_path = &g_debuginfo_path,
};

struct Counters {
  unsigned long long adds = 0, subs = 0;
  bool known = false;
};

int ReadCounters(dl_phdr_info* info, size_t size, void* arg) {
  auto* c = static_cast<Counters*>(arg);
  if (size >= offsetof(dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs)) {
    c->adds = info->dlpi_adds;
    c->subs = info->dlpi_subs;
    c->known = true;
  }
  return 1;  // the counters are the same in every entry
}

std::string Hex(const unsigned char* p, int n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < n; ++i) {
    s.push_back(kDigits[p[i] >> 4]);
    s.push_back(kDigits[p[i] & 15]);
  }
  return s;
}

std::string Demangle(const char* raw) {
  int status = 0;
  char* d = abi::__cxa_demangle(raw, nullptr, nullptr, &status);
  std::string s = status == 0 && d != nullptr ? d : raw;
  std::free(d);
  return s;
}

// The function a DW_TAG_subprogram or DW_TAG_inlined_subroutine DIE names,
// following DW_AT_abstract_origin and DW_AT_specification.
void DieNames(Dwarf_Die* die, std::string* name, std::string* system_name) {
  Dwarf_Attribute attr;
  const char* linkage = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_linkage_name, &attr));
  if (linkage == nullptr) {
    linkage = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr));
  }
  if (linkage != nullptr) {
    *system_name = linkage;
    *name = Demangle(linkage);
    return;
  }
  const char* plain = dwarf_diename(die);
  *name = plain != nullptr ? plain : "";
  *system_name = *name;
}

// A path of the line table made absolute with the unit's directory.
std::string SourcePath(const char* file, Dwarf_Die* cudie) {
  if (file == nullptr) return "";
  if (file[0] == '/' || file[0] == '\0') return file;
  Dwarf_Attribute attr;
  const char* dir = dwarf_formstring(dwarf_attr(cudie, DW_AT_comp_dir, &attr));
  return dir != nullptr && dir[0] != '\0' ? std::string(dir) + "/" + file : std::string(file);
}

// The functions whose code holds addr (a DWARF address), innermost first:
// inlined subroutines, then the subprogram.
std::vector<Dwarf_Die> FunctionChain(Dwarf_Die* cudie, Dwarf_Addr addr) {
  std::vector<Dwarf_Die> chain;
  Dwarf_Die* scopes = nullptr;
  const int n = dwarf_getscopes(cudie, addr, &scopes);
  if (n <= 0) {
    std::free(scopes);
    return chain;
  }
  // Past an inlined instance dwarf_getscopes continues with its abstract
  // origin's scopes; the containment of the innermost scope is the call chain.
  Dwarf_Die inner = scopes[0];
  std::free(scopes);
  scopes = nullptr;
  const int m = dwarf_getscopes_die(&inner, &scopes);
  for (int i = 0; i < m; ++i) {
    const int tag = dwarf_tag(&scopes[i]);
    if (tag == DW_TAG_inlined_subroutine || tag == DW_TAG_subprogram) chain.push_back(scopes[i]);
    if (tag == DW_TAG_subprogram) break;
  }
  std::free(scopes);
  return chain;
}

}  // namespace

struct SourceSymbolizer::Session {
  Dwfl* dwfl = nullptr;
  std::unordered_set<Dwfl_Module*> trusted;  // file's build id is the loaded object's
  ~Session() {
    if (dwfl != nullptr) dwfl_end(dwfl);
  }
};

SourceSymbolizer::SourceSymbolizer() : symbols_(std::make_unique<Symbolizer>(&mappings_)) {}

SourceSymbolizer* SourceSymbolizer::Acquire() {
  if (t_held) return nullptr;
  g_mu.lock();
  t_held = true;
  try {
    if (g_instance == nullptr) {
      g_instance = new SourceSymbolizer();
    }
    if (g_instance->cache_.size() > kMaxCachedPcs) {
      g_instance->cache_.clear();
      g_instance->pool_.clear();
    }
    g_instance->Refresh();
  } catch (...) {
    t_held = false;
    g_mu.unlock();
    throw;
  }
  return g_instance;
}

void SourceSymbolizer::Release() {
  t_held = false;
  g_mu.unlock();
}

void SourceSymbolizer::Refresh() {
  Counters c;
  dl_iterate_phdr(ReadCounters, &c);
  if (loaded_ && c.known && c.adds == adds_ && c.subs == subs_) return;
  // An object unloaded since: its addresses may hold another one now.
  if (!loaded_ || !c.known || c.subs != subs_) {
    cache_.clear();
    pool_.clear();
  }
  loaded_ = true;
  adds_ = c.adds;
  subs_ = c.subs;
  mappings_ = ReadMappings();
  symbols_ = std::make_unique<Symbolizer>(&mappings_);

  if (dwfl_ == nullptr) {
    dwfl_ = std::make_unique<Session>();
    dwfl_->dwfl = dwfl_begin(&kCallbacks);
  }
  Dwfl* d = dwfl_->dwfl;
  if (d == nullptr) return;
  // Modules reported again with the same name and range keep what they
  // loaded (libdwfl reuses them); the others are dropped at dwfl_report_end.
  dwfl_report_begin(d);
  std::vector<std::pair<Dwfl_Module*, const ObjectMapping*>> reported;
  for (size_t i = 0; i < mappings_.size(); ++i) {
    const ObjectMapping& m = mappings_[i];
    if (m.file.empty() || m.file[0] != '/') continue;  // the vdso
    bool seen = false;                                 // an object with several executable segments
    for (size_t j = 0; j < i && !seen; ++j) {
      seen = mappings_[j].file == m.file && mappings_[j].bias == m.bias;
    }
    if (seen) continue;
    Dwfl_Module* mod = dwfl_report_elf(d, m.file.c_str(), m.file.c_str(), -1, m.bias, true);
    if (mod != nullptr) reported.emplace_back(mod, &m);
  }
  dwfl_report_end(d, nullptr, nullptr);
  dwfl_->trusted.clear();
  for (const auto& [mod, m] : reported) {
    // A file replaced on disk since it was loaded would give wrong lines.
    const unsigned char* bits = nullptr;
    GElf_Addr vaddr = 0;
    const int n = dwfl_module_build_id(mod, &bits, &vaddr);
    if (m->build_id.empty() || (n > 0 && Hex(bits, n) == m->build_id)) {
      dwfl_->trusted.insert(mod);
    }
  }
}

const std::string* SourceSymbolizer::Intern(const std::string& s) {
  return &*pool_.insert(s).first;
}

const PcSource& SourceSymbolizer::Lookup(uintptr_t pc) {
  auto it = cache_.find(pc);
  if (it != cache_.end()) return it->second;
  PcSource& s = cache_[pc];
  Resolve(pc, &s);
  return s;
}

void SourceSymbolizer::Resolve(uintptr_t pc, PcSource* out) {
  std::string name, system_name;
  uintptr_t start = 0;
  const bool named = symbols_->Lookup(pc, &name, &system_name, &start);
  out->symbol_start = start;
  const std::string* empty = Intern("");

  Dwfl_Module* mod =
      dwfl_ != nullptr && dwfl_->dwfl != nullptr ? dwfl_addrmodule(dwfl_->dwfl, pc) : nullptr;
  if (mod != nullptr && dwfl_->trusted.count(mod) != 0) {
    Dwarf_Addr bias = 0;
    Dwarf_Die* cudie = dwfl_module_addrdie(mod, pc, &bias);
    Dwfl_Line* line = cudie != nullptr ? dwfl_module_getsrc(mod, pc) : nullptr;
    int lineno = 0;
    const char* file = line != nullptr
                           ? dwfl_lineinfo(line, nullptr, &lineno, nullptr, nullptr, nullptr)
                           : nullptr;
    if (file != nullptr) {
      Dwarf_Die cu = *cudie;  // copied: libdwfl's is reused by the next lookup
      const std::vector<Dwarf_Die> chain = FunctionChain(&cu, pc - bias);
      Dwarf_Files* files = nullptr;
      if (dwarf_getsrcfiles(&cu, &files, nullptr) != 0) files = nullptr;
      std::string cur_file = SourcePath(file, &cu);
      int64_t cur_line = lineno;
      bool physical = false;  // the chain reached the subprogram
      for (size_t i = 0; i < chain.size(); ++i) {
        Dwarf_Die die = chain[i];
        std::string fname, fsys;
        physical = dwarf_tag(&die) == DW_TAG_subprogram;
        if (physical && named) {  // the symbol table's name, as profiles without DWARF have
          fname = name;
          fsys = system_name;
        } else {
          DieNames(&die, &fname, &fsys);
        }
        int decl = 0;
        if (dwarf_decl_line(&die, &decl) != 0) decl = 0;
        out->frames.push_back(
            SourceFrame{Intern(fname), Intern(fsys), Intern(cur_file), cur_line, decl});
        if (physical) break;
        // An inlined call: the caller's frame is at its call site.
        Dwarf_Attribute attr;
        Dwarf_Word v = 0;
        cur_file.clear();
        cur_line = 0;
        if (files != nullptr &&
            dwarf_formudata(dwarf_attr(&die, DW_AT_call_file, &attr), &v) == 0) {
          cur_file = SourcePath(dwarf_filesrc(files, v, nullptr, nullptr), &cu);
        }
        if (dwarf_formudata(dwarf_attr(&die, DW_AT_call_line, &attr), &v) == 0) {
          cur_line = static_cast<int64_t>(v);
        }
      }
      if (!physical) {  // no subprogram DIE around the pc: the symbol's, at the last line
        out->frames.push_back(SourceFrame{Intern(named ? name : ""),
                                          Intern(named ? system_name : ""), Intern(cur_file),
                                          cur_line, 0});
      }
      out->dwarf = true;
      return;
    }
  }
  if (named) out->frames.push_back(SourceFrame{Intern(name), Intern(system_name), empty, 0, 0});
}

}  // namespace assay::pprof
