// The vDSO's clock_gettime (vdso.h): its ELF image is found through the
// auxiliary vector (AT_SYSINFO_EHDR) and its dynamic symbols searched by
// name. The vDSO is linked with both hash styles; DT_HASH's chain count is
// the number of symbols.
#include "base/vdso.h"

#include <elf.h>
#include <link.h>
#include <string.h>
#include <sys/auxv.h>

#include <cstdint>

#include "base/base.h"

namespace assay::internal::vdso {
namespace {

constinit ClockGettimeFn g_clock = nullptr;
constinit int g_looked_up = 0;

// x86-64's name, then arm64's.
bool IsClockGettime(const char* name) {
  return strcmp(name, "__vdso_clock_gettime") == 0 || strcmp(name, "__kernel_clock_gettime") == 0;
}

ASSAY_STARTUP ClockGettimeFn Find() {
  const uintptr_t base = getauxval(AT_SYSINFO_EHDR);
  if (base == 0) return nullptr;
  const auto* eh = reinterpret_cast<const ElfW(Ehdr)*>(base);
  if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0) return nullptr;
  const auto* ph = reinterpret_cast<const ElfW(Phdr)*>(base + eh->e_phoff);
  // bias: what turns the image's link-time addresses into run-time ones.
  uintptr_t bias = 0;
  bool loaded = false;
  const ElfW(Dyn)* dyn = nullptr;
  for (size_t i = 0; i < eh->e_phnum; ++i) {
    if (ph[i].p_type == PT_LOAD && !loaded) {
      bias = base + ph[i].p_offset - ph[i].p_vaddr;
      loaded = true;
    } else if (ph[i].p_type == PT_DYNAMIC) {
      dyn = reinterpret_cast<const ElfW(Dyn)*>(base + ph[i].p_offset);
    }
  }
  if (!loaded || dyn == nullptr) return nullptr;
  const ElfW(Sym)* syms = nullptr;
  const char* names = nullptr;
  const uint32_t* hash = nullptr;
  for (const ElfW(Dyn)* d = dyn; d->d_tag != DT_NULL; ++d) {
    if (d->d_tag == DT_SYMTAB) syms = reinterpret_cast<const ElfW(Sym)*>(bias + d->d_un.d_ptr);
    if (d->d_tag == DT_STRTAB) names = reinterpret_cast<const char*>(bias + d->d_un.d_ptr);
    if (d->d_tag == DT_HASH) hash = reinterpret_cast<const uint32_t*>(bias + d->d_un.d_ptr);
  }
  if (syms == nullptr || names == nullptr || hash == nullptr) return nullptr;
  for (uint32_t i = 0; i < hash[1]; ++i) {  // hash[1]: nchain, one per symbol
    const ElfW(Sym)& s = syms[i];
    if (ELF64_ST_TYPE(s.st_info) == STT_FUNC && s.st_shndx != SHN_UNDEF &&
        IsClockGettime(names + s.st_name)) {
      return reinterpret_cast<ClockGettimeFn>(bias + s.st_value);
    }
  }
  return nullptr;
}

}  // namespace

ASSAY_FIRST_USE ClockGettimeFn ClockGettime() {
  // Racing first callers find the same function.
  if (__atomic_load_n(&g_looked_up, __ATOMIC_ACQUIRE) == 0) {
    __atomic_store_n(&g_clock, Find(), __ATOMIC_RELAXED);
    __atomic_store_n(&g_looked_up, 1, __ATOMIC_RELEASE);
  }
  return __atomic_load_n(&g_clock, __ATOMIC_RELAXED);
}

}  // namespace assay::internal::vdso
