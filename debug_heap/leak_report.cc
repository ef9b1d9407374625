// The leak report (leak_report.h).
#include "debug_heap/leak_report.h"

#include <algorithm>

#include "profiler/dumper.h"
#include "profiler/profile_data.h"
#include "profiler/stack_table.h"

namespace assay::internal::debug::leak {
namespace {

struct Site {
  const profiler::Stack* stack;
  size_t blocks, bytes;                // all leaked blocks from here
  size_t direct_blocks, direct_bytes;  // those no other leaked block reaches
};

void WriteLeakProfile(const Site* sites, size_t n, const char* path) {
  RawArray<AssayProfileSample> samples;
  RawArray<uintptr_t> frames;
  for (size_t i = 0; i < n; ++i) {
    AssayProfileSample smp{};
    smp.frame_offset = static_cast<uint32_t>(frames.size);
    const profiler::Stack* st = sites[i].stack;
    smp.depth = st != nullptr ? st->depth : 0;
    for (uint32_t f = 0; f < smp.depth; ++f) frames.Push(st->frames[f]);
    const int64_t objects = static_cast<int64_t>(sites[i].blocks);
    const int64_t bytes = static_cast<int64_t>(sites[i].bytes);
    smp.values[0] = smp.values[2] = objects;
    smp.values[1] = smp.values[3] = bytes;
    smp.requested_bytes = -1;
    smp.batch_index = -1;
    samples.Push(smp);
  }
  AssayProfileData data{};
  data.kind = "leak";
  data.default_sample_type = 3;
  data.time_nanos = 0;
  data.period = 1;
  data.samples = samples.data;
  data.nsamples = samples.size;
  data.frames = frames.data;
  data.nframes = frames.size;
  data.comment = "assay debug heap: blocks no pointer reaches at exit (ASSAY_DEBUG=leaks)";
  if (profiler::dumper::WriteProfileData(&data, path) == 0) {
    Print("assay: leak profile written to %s\n", path);
  }
  samples.Free();
  frames.Free();
}

const char* Plural(size_t n) { return n == 1 ? "" : "s"; }

}  // namespace

size_t Report(const Scan& s, uint64_t scan_ns, size_t threads, bool stopped) {
  struct Lost {
    const Header* h;
    bool direct;
  };
  RawArray<Site> sites;
  RawArray<Lost> lost;
  size_t lost_bytes = 0, direct_blocks = 0, direct_bytes = 0;
  for (size_t i = 0; i < s.blocks.size; ++i) {
    if (s.state.data[i] == kReached) continue;
    const Header* h = s.blocks.data[i].header;
    const bool direct = s.state.data[i] == kUnreached;
    lost.Push(Lost{h, direct});
    lost_bytes += h->size;
    if (direct) {
      ++direct_blocks;
      direct_bytes += h->size;
    }
  }
  const double ms = static_cast<double>(scan_ns) / 1e6;
  if (lost.size == 0) {
    Print("assay: leaks: none among %zu live blocks at exit (scan %.1f ms)\n", s.blocks.size, ms);
    return 0;
  }
  std::sort(lost.data, lost.data + lost.size,
            [](const Lost& a, const Lost& b) { return a.h->alloc_stack < b.h->alloc_stack; });
  for (size_t i = 0; i < lost.size; ++i) {
    const Header* h = lost.data[i].h;
    if (sites.size == 0 || sites.data[sites.size - 1].stack != h->alloc_stack) {
      sites.Push(Site{h->alloc_stack, 0, 0, 0, 0});
    }
    Site& site = sites.data[sites.size - 1];
    site.blocks++;
    site.bytes += h->size;
    if (lost.data[i].direct) {
      site.direct_blocks++;
      site.direct_bytes += h->size;
    }
  }
  // Sites with direct leaks first (fixing those frees the rest), biggest first.
  std::sort(sites.data, sites.data + sites.size, [](const Site& a, const Site& b) {
    if (a.direct_bytes != b.direct_bytes) return a.direct_bytes > b.direct_bytes;
    return a.bytes > b.bytes;
  });
  Print("assay: leaks: %zu blocks (%zu bytes) not reachable at exit, from %zu allocation sites\n",
        lost.size, lost_bytes, sites.size);
  Print(
      "assay: leaks: direct %zu bytes in %zu block%s, indirect %zu bytes in %zu block%s "
      "(scan %.1f ms, %zu live blocks, %zu thread%s%s)\n",
      direct_bytes, direct_blocks, Plural(direct_blocks), lost_bytes - direct_bytes,
      lost.size - direct_blocks, Plural(lost.size - direct_blocks), ms, s.blocks.size, threads,
      Plural(threads), stopped ? " stopped" : "");
  const size_t shown = sites.size < 20 ? sites.size : 20;
  for (size_t i = 0; i < shown; ++i) {
    const Site& site = sites.data[i];
    Print(
        "  %zu bytes in %zu block%s (direct %zu bytes in %zu, indirect %zu bytes in %zu) "
        "allocated at:\n",
        site.bytes, site.blocks, Plural(site.blocks), site.direct_bytes, site.direct_blocks,
        site.bytes - site.direct_bytes, site.blocks - site.direct_blocks);
    if (site.stack != nullptr) {
      WriteStack(site.stack, 16);
    } else {
      os::WriteStderr("    (stack not recorded)\n");
    }
  }
  if (shown < sites.size) {
    Print("  ... and %zu more sites (see the leak profile)\n", sites.size - shown);
  }
  if (GetConfig().leak_profile[0] != '\0') {
    WriteLeakProfile(sites.data, sites.size, GetConfig().leak_profile);
  }
  Print("SUMMARY: assay: %zu byte(s) leaked in %zu allocation(s).\n", lost_bytes, lost.size);
  const size_t leaked = lost.size;
  sites.Free();
  lost.Free();
  return leaked;
}

}  // namespace assay::internal::debug::leak
