// The cost of one sampled allocation: malloc(64)+free under 80 frames, with
// the profiler off, sampling every allocation (rate 1, 64-frame stacks), and
// sampling with a tracker that follows every block, for each stack method.
// Links assay statically (it needs the profiler API); not a pass/fail test.
#include <benchmark/benchmark.h>
#include <stdint.h>
#include <stdlib.h>

#include <optional>
#include <string>
#include <utility>

#include "assay/profiler.hpp"

namespace {

constexpr int kFrames = 80;  // more than max_depth: every sampled stack is 64 frames
constexpr int kMaxDepth = 64;

volatile uintptr_t g_sink;

// The benchmark loop, run at the bottom of kFrames frames of Recurse.
__attribute__((noinline)) void MallocFreeLoop(benchmark::State& state) {
  for (auto _ : state) {
    void* p = malloc(64);
    g_sink = reinterpret_cast<uintptr_t>(p);
    free(p);
  }
}

__attribute__((noinline, noclone)) void Recurse(int depth, benchmark::State& state) {
  if (depth == 0) {
    MallocFreeLoop(state);
  } else {
    Recurse(depth - 1, state);
  }
  g_sink = g_sink + 1;  // not a tail call: every frame stays on the stack
}

enum Mode { kOff = 0, kSampled = 1, kTracked = 2 };

// Args: {stack method (0 unwind, 1 frame pointer), mode}.
void SampledAllocationAtDepth64(benchmark::State& state) {
  const auto method =
      state.range(0) == 0 ? assay::StackMethod::kUnwind : assay::StackMethod::kFramePointer;
  const auto mode = static_cast<Mode>(state.range(1));
  assay::ProfilerOptions o;
  o.rate = 1;
  o.seed = 5;
  o.max_depth = kMaxDepth;
  o.stack_method = method;
  size_t depth = 0;  // of the first tracked stack
  if (mode == kSampled && !assay::Start(o)) {
    state.SkipWithError("assay::Start failed");
    return;
  }
  if (mode == kTracked) {
    assay::Tracker t;
    t.on_alloc = [&depth](const assay::SampledAllocation& a) -> std::optional<assay::Token> {
      if (depth == 0) depth = a.stack.size();
      return assay::Token{1};
    };
    t.on_free = [](assay::Token) {};
    if (!assay::Start(o, std::move(t))) {
      state.SkipWithError("assay::Start failed");
      return;
    }
  }
  Recurse(kFrames, state);
  if (mode != kOff) assay::Stop();
  if (mode == kTracked) {
    state.counters["stack_depth"] = static_cast<double>(depth);
    if (depth != static_cast<size_t>(kMaxDepth)) state.SkipWithError("stacks are not 64 frames");
  }
  state.SetLabel(std::string(method == assay::StackMethod::kUnwind ? "unwind" : "frame_pointer") +
                 (mode == kOff       ? ", off"
                  : mode == kSampled ? ", sampled"
                                     : ", tracked"));
}
BENCHMARK(SampledAllocationAtDepth64)->ArgsProduct({{0, 1}, {kOff, kSampled, kTracked}});

}  // namespace

BENCHMARK_MAIN();
