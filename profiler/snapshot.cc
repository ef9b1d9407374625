// Snapshots and the profile builder (snapshot.h).
#include "profiler/snapshot.h"

#include <cmath>
#include <cstdio>
#include <cstring>

#include "profiler/entry.h"

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

int64_t Round(double v) { return v <= 0 ? 0 : static_cast<int64_t>(std::llround(v)); }

}  // namespace

void AddEntry(Snapshot* s, const Entry& e0) {
  const Entry* e = &e0;
  const auto slot = SlotOf(s, e->stack);
  const bool old = s->clock.clock - e->birth_clock >= s->clock.young_bytes;
  const Key key{slot.first,
                slot.second,
                static_cast<int64_t>(e->requested),
                static_cast<int64_t>(e->alignment),
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
  if (st->alloc_samples == 0) return;
  const auto slot = SlotOf(s, st);
  Snapshot::Cumulative& c = s->cumulative[slot.first];
  c.w.objects += st->alloc_objects;
  c.w.bytes += st->alloc_bytes;
  c.depth = slot.second;
  c.cache = st->cache;
}

void Take(Snapshot* s, bool cumulative) {
  s->clock = GetClockState();
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

}  // namespace assay::profiler::snapshot
