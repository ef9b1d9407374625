// Snapshots and the profile builder (snapshot.h).
#include "profiler/snapshot.h"

#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>

#include "base/os.h"
#include "profiler/entry.h"
#include "profiler/fmath.h"

namespace assay::profiler::snapshot {
namespace {

std::pair<uint32_t, uint32_t> SlotOf(Snapshot* s, const Stack* st) {
  auto it = s->stack_slot.find(st);
  if (it != s->stack_slot.end()) return it->second;
  const auto slot = std::make_pair(static_cast<uint32_t>(s->frames.size()), st->depth);
  s->frames.insert(s->frames.end(), st->frames, st->frames + st->depth);
  s->stack_slot.emplace(st, slot);
  return slot;
}

int64_t Round(double v) { return v <= 0 ? 0 : static_cast<int64_t>(fmath::Llround(v)); }

}  // namespace

void AddEntry(Snapshot* s, const Entry& e0) {
  const Entry* e = &e0;
  const auto slot = SlotOf(s, e->stack);
  const bool old = s->clock.clock - e->birth_clock >= s->clock.young_bytes;
  const Key key{slot.first,
                slot.second,
                static_cast<int64_t>(e->requested),
                static_cast<int64_t>(AlignmentOf(*e)),
                static_cast<int64_t>(e->thread_id),
                e->batch_size > 1 ? static_cast<int64_t>(e->batch_index) : -1,
                old ? 2 : 1,
                e->stack->cache};
  Weights& w = s->live[key];
  w.objects += e->weight_objects;
  w.bytes += e->weight_bytes;
  if (e->alloc_gen == s->clock.alloc_gen) {
    Weights& r = s->live_since_reset[slot.first];
    r.objects += e->weight_objects;
    r.bytes += e->weight_bytes;
  }
  s->live_blocks++;
}

void AddStack(Snapshot* s, const Stack& st0) {
  const Stack* st = &st0;
  // Under the stack's counts lock: cache hits raise them without the shard
  // lock (stack_cache).
  const stack_table::CumulativeCounts counts = stack_table::ReadCounts(st);
  if (counts.samples == 0) return;
  const auto slot = SlotOf(s, st);
  Snapshot::Cumulative& c = s->cumulative[slot.first];
  c.w.objects += counts.objects;
  c.w.bytes += counts.bytes;
  c.depth = slot.second;
  c.cache = st->cache;
}

void Take(Snapshot* s, bool cumulative) {
  s->clock = GetClockState();
  s->taken_ns = internal::os::NowNs();
  entry_table::ForEach([](const Entry* e, void* arg) { AddEntry(static_cast<Snapshot*>(arg), *e); },
                       s);
  if (!cumulative) return;
  stack_table::ForEach(
      [](const Stack* st, void* arg) { AddStack(static_cast<Snapshot*>(arg), *st); }, s);
}

void Build(const Snapshot& s, const char* kind, int64_t wall_ns, uint64_t now_ns, Built* out) {
  const bool alloc = std::strcmp(kind, "alloc") == 0;
  std::vector<AssayProfileSample>& samples = out->samples;
  samples.clear();
  samples.reserve(s.live.size() + s.cumulative.size());
  for (const auto& [k, w] : s.live) {
    AssayProfileSample p{};
    p.frame_offset = k.frame_offset;
    p.depth = k.depth;
    p.values[0] = p.values[2] = Round(w.objects);
    p.values[1] = p.values[3] = Round(w.bytes);
    p.requested_bytes = k.requested;
    p.alignment = k.alignment;
    p.thread_id = k.thread;
    p.batch_index = k.batch_index;
    p.generation = k.generation;
    p.cache = k.cache;
    samples.push_back(p);
  }
  // Allocations since the reset that are no longer live: alloc_* only.
  for (const auto& [slot, cum] : s.cumulative) {
    Weights freed = cum.w;
    if (auto it = s.live_since_reset.find(slot); it != s.live_since_reset.end()) {
      freed.objects -= it->second.objects;
      freed.bytes -= it->second.bytes;
    }
    if (Round(freed.objects) <= 0 && Round(freed.bytes) <= 0) continue;
    AssayProfileSample p{};
    p.frame_offset = slot;
    p.depth = cum.depth;
    p.values[0] = Round(freed.objects);
    p.values[1] = Round(freed.bytes);
    p.requested_bytes = -1;
    p.batch_index = -1;
    p.cache = cum.cache;
    samples.push_back(p);
  }
  char* comment = out->comment;
  snprintf(comment, sizeof(out->comment), "sampling rate %llu bytes; %zu live sampled blocks",
           static_cast<unsigned long long>(s.clock.rate), s.live_blocks);
  AssayProfileData& data = out->data;
  data = AssayProfileData{};
  data.kind = kind;
  data.default_sample_type = alloc ? 1 : 3;
  data.time_nanos = wall_ns;
  data.duration_nanos = static_cast<int64_t>(now_ns - s.clock.since_ns);
  data.period = static_cast<int64_t>(s.clock.rate);
  data.samples = samples.data();
  data.nsamples = samples.size();
  data.frames = s.frames.data();
  data.nframes = s.frames.size();
  data.comment = comment;
}

void BuildDelta(const Snapshot& before, const Snapshot& after, const char* kind, int64_t wall_ns,
                uint64_t duration_ns, Built* out) {
  // Stacks are matched by their frames and cache: slots differ between
  // snapshots. An ordered map keeps the output deterministic.
  using StackKey = std::pair<std::vector<uintptr_t>, const char*>;
  std::map<StackKey, std::array<double, 4>> delta;
  auto add = [&delta](const Snapshot& s, uint32_t offset, uint32_t depth, const char* cache,
                      int first, double objects, double bytes) {
    StackKey key(
        std::vector<uintptr_t>(s.frames.begin() + offset, s.frames.begin() + offset + depth),
        cache);
    std::array<double, 4>& v = delta.try_emplace(std::move(key)).first->second;
    v[first] += objects;
    v[first + 1] += bytes;
  };
  const bool same_generation = before.clock.alloc_gen == after.clock.alloc_gen;
  for (int pass = 0; pass < 2; ++pass) {  // before subtracted, after added
    const Snapshot* s = pass == 0 ? &before : &after;
    const double sign = pass == 0 ? -1.0 : 1.0;
    for (const auto& [k, w] : s->live)
      add(*s, k.frame_offset, k.depth, k.cache, 2, sign * w.objects, sign * w.bytes);
    if (pass == 0 && !same_generation) continue;
    for (const auto& [slot, cum] : s->cumulative)
      add(*s, slot, cum.depth, cum.cache, 0, sign * cum.w.objects, sign * cum.w.bytes);
  }
  out->samples.clear();
  out->frames.clear();
  for (const auto& [key, v] : delta) {
    AssayProfileSample p{};
    bool any = false;
    for (int i = 0; i < 4; ++i) {
      p.values[i] = static_cast<int64_t>(fmath::Llround(v[i]));
      any = any || p.values[i] != 0;
    }
    if (!any) continue;
    p.frame_offset = static_cast<uint32_t>(out->frames.size());
    p.depth = static_cast<uint32_t>(key.first.size());
    out->frames.insert(out->frames.end(), key.first.begin(), key.first.end());
    p.requested_bytes = -1;
    p.batch_index = -1;
    p.cache = key.second;
    out->samples.push_back(p);
  }
  snprintf(out->comment, sizeof(out->comment),
           "sampling rate %llu bytes; delta over %.3f s: alloc_* allocated, inuse_* change of "
           "the live heap",
           static_cast<unsigned long long>(after.clock.rate),
           static_cast<double>(duration_ns) / 1e9);
  AssayProfileData& data = out->data;
  data = AssayProfileData{};
  data.kind = kind;
  data.default_sample_type = std::strcmp(kind, "alloc") == 0 ? 1 : 3;
  data.time_nanos = wall_ns;
  data.duration_nanos = static_cast<int64_t>(duration_ns);
  data.period = static_cast<int64_t>(after.clock.rate);
  data.samples = out->samples.data();
  data.nsamples = out->samples.size();
  data.frames = out->frames.data();
  data.nframes = out->frames.size();
  data.comment = out->comment;
}

}  // namespace assay::profiler::snapshot
