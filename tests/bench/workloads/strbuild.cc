// (f) realloc-heavy string building: strings grow by appending random chunks
// of 1-64 bytes, each append a realloc to the exact new length (as a naive
// builder, or a C program with no capacity field, does). 1 in 4 finished
// strings is kept (a bounded set of 4096, random replacement), the rest are
// freed; a few strings grow up to 256 KiB. Single-threaded.
#include <vector>

#include "common.h"

int main(int argc, char** argv) {
  const wl::Args a = wl::Parse(argc, argv, 1);
  const uint64_t strings = wl::Scaled(a.scale, 600000);
  wl::Rng r(6000);
  std::vector<char*> kept(4096, nullptr);
  uint64_t check = 0;
  wl::Timer t;
  for (uint64_t s = 0; s < strings; ++s) {
    const size_t target = r.Chance(1, 200) ? r.Range(16 << 10, 256 << 10) : r.LogRange(16, 4096);
    size_t len = 0;
    char* str = nullptr;
    while (len < target) {
      const size_t chunk = r.Range(1, 64);
      str = static_cast<char*>(realloc(str, len + chunk + 1));
      memset(str + len, 'a' + static_cast<int>(chunk % 26), chunk);
      len += chunk;
      str[len] = '\0';
    }
    check += static_cast<unsigned char>(str[len / 2]);
    if (r.Chance(1, 4)) {
      char*& slot = kept[r.Below(kept.size())];
      free(slot);
      slot = str;
    } else {
      free(str);
    }
  }
  for (char* p : kept) free(p);
  wl::Report("strbuild", a, t, check);
}
