// (h) Mass free: a key-value store filled with 300 000 values of 512 bytes
// (string keys, a small metadata block per entry), then emptied, while an
// append-only index keeps a few small blocks of the metadata's class in
// nearly every span. What matters is the resident memory afterwards: the
// program prints RSS (from /proc/self/statm) before the fill, after it,
// right after the mass free and 3 s later (the allocators' decay times are
// shorter), on stderr as
//   massfree rss_kib before=B filled=F freed=R final=L
// Single-threaded.
#include <unistd.h>

#include <string>
#include <unordered_map>
#include <vector>

#include "common.h"

namespace {

long RssKiB() {
  FILE* f = fopen("/proc/self/statm", "r");
  if (f == nullptr) return -1;
  long size = 0, resident = 0;
  const int got = fscanf(f, "%ld %ld", &size, &resident);
  fclose(f);
  return got == 2 ? resident * (sysconf(_SC_PAGESIZE) / 1024) : -1;
}

struct Entry {
  void* value;  // 512 bytes
  void* meta;   // 24..80 bytes: one of several small classes
};

// The index: every 400 entries it appends a chunk of 20 nodes of the
// metadata's class 80 (a run of consecutive blocks, allocated together), so
// 5% of the entries leave one surviving small block behind, a run of them in
// almost every span of that class, and each run within a page or two.
constexpr size_t kIndexEvery = 400;
constexpr size_t kIndexChunk = 20;
constexpr size_t kIndexNode = 80;

}  // namespace

int main(int argc, char** argv) {
  const wl::Args a = wl::Parse(argc, argv, 1);
  const size_t n = wl::Scaled(a.scale, 300000);
  const double settle_s = argc > 3 ? strtod(argv[3], nullptr) : 3.0;
  wl::Rng r(8000);
  uint64_t check = 0;
  wl::Timer t;
  const long before = RssKiB();
  std::vector<void*> index;  // survives the mass free
  index.reserve(n / kIndexEvery * kIndexChunk + kIndexChunk);
  auto* map = new std::unordered_map<std::string, Entry>();
  static constexpr size_t kMetaSizes[] = {24, 40, 72, 80};
  for (size_t i = 0; i < n; ++i) {
    // 16+ characters: beyond libstdc++'s inline string, so the key is a block too.
    char key[40];
    snprintf(key, sizeof(key), "user:%012llx", static_cast<unsigned long long>(r.Next() >> 16));
    Entry e;
    e.value = malloc(512);
    memset(e.value, static_cast<int>(i), 512);
    const size_t m = kMetaSizes[i % 4];
    e.meta = malloc(m);
    check += wl::Touch(e.meta, m, i);
    auto [it, fresh] = map->emplace(key, e);
    if (!fresh) {  // a repeated key replaces the old value
      free(it->second.value);
      free(it->second.meta);
      it->second = e;
    }
    if (i % kIndexEvery == kIndexEvery - 1) {
      for (size_t k = 0; k < kIndexChunk; ++k) {
        void* node = malloc(kIndexNode);
        check += wl::Touch(node, kIndexNode, i + k);
        index.push_back(node);
      }
    }
  }
  const long filled = RssKiB();
  for (auto& [key, e] : *map) {
    check += static_cast<unsigned char*>(e.value)[511] + static_cast<unsigned char*>(e.meta)[0];
    free(e.value);
    free(e.meta);
  }
  delete map;  // the buckets and nodes too: the store is empty
  const long freed = RssKiB();
  usleep(static_cast<useconds_t>(settle_s * 1e6));
  const long final_rss = RssKiB();
  for (void* p : index) check += *static_cast<unsigned char*>(p);
  fprintf(stderr, "massfree rss_kib before=%ld filled=%ld freed=%ld final=%ld\n", before, filled,
          freed, final_rss);
  for (void* p : index) free(p);
  wl::Report("massfree", a, t, check);
}
