// Profiles out of the process (dumper.h): one dump at a time, under
// g_dump_mu, with sampling suspended on the dumping thread. A dump takes a
// snapshot under the entry table's and stack table's shard locks (copying,
// never building), then aggregates it and hands it to the pprof writer
// outside every lock: to a file (Dump: MALLOC_PROF's names or an API call's
// path, a failure reported once), or to bytes for the HTTP endpoint and
// assay_profile_to_fd (ProfileBytes). The public API's dumps are here; the
// dump thread and MALLOC_PROF's triggers are dumper.cc's.
//
// Snapshots and the writer's input: snapshot.h; the writer: plugin_loader.h.
#include "profiler/profile_output.h"

#include <errno.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "assay/assay.h"
#include "assay/profiler.hpp"
#include "base/os.h"
#include "base/probes.h"
#include "profiler/plugin_loader.h"
#include "profiler/profile_data.h"
#include "profiler/profiler.h"
#include "profiler/snapshot.h"

namespace assay::profiler::dumper {

constinit ProfConfig g_cfg;
constinit internal::Mutex g_dump_mu;

namespace {

using internal::LockGuard;
using snapshot::Snapshot;

uint64_t g_seq = 0;  // files written by this process
uint32_t g_write_error_reported = 0;

int64_t NowWallNs() { return internal::os::WallNs(); }

// Builds the writer's input from a snapshot (taken now, or `taken` if
// given) and writes it. Called with g_dump_mu held.
int Write(const char* kind, const std::string& path, std::string* error,
          const Snapshot* taken = nullptr) {
  Snapshot fresh;
  if (taken == nullptr) snapshot::Take(&fresh, std::strcmp(kind, "leak") != 0);
  snapshot::Built built;
  snapshot::Build(taken != nullptr ? *taken : fresh, kind, NowWallNs(), internal::os::NowNs(),
                  &built);
  built.data.file_mode = static_cast<unsigned>(g_cfg.file_mode);  // MALLOC_PROF mode= (0: 0600)
  return plugin::CallWriter(built.data, path.c_str(), error);
}

std::string NextPath(const char* kind) {
  const uint64_t seq = __atomic_fetch_add(&g_seq, 1, __ATOMIC_RELAXED);
  char buf[700];
  snprintf(buf, sizeof(buf), "%s.%d.%llu.%s.pb.gz", g_cfg.prefix, internal::os::ProcessId(),
           static_cast<unsigned long long>(seq), kind);
  return buf;
}

bool ValidKind(const char* kind) {
  return kind != nullptr && (std::strcmp(kind, "heap") == 0 || std::strcmp(kind, "alloc") == 0 ||
                             std::strcmp(kind, "peak") == 0 || std::strcmp(kind, "leak") == 0);
}

}  // namespace

int Dump(const char* kind, const char* path_or_null, std::string* written, const Snapshot* taken) {
  ScopedSuspend suspend;
  LockGuard lock(g_dump_mu);
  const std::string path =
      path_or_null != nullptr && *path_or_null != '\0' ? std::string(path_or_null) : NextPath(kind);
  std::string error;
  const int rc = Write(kind, path, &error, taken);
  if (rc != 0) {
    if (__atomic_exchange_n(&g_write_error_reported, 1, __ATOMIC_RELAXED) == 0) {
      const std::string line = "assay: cannot write " + std::string(kind) + " profile " + path +
                               ": " + error + " (reported once; the program runs on)\n";
      internal::os::WriteStderr(line.c_str());
    }
  } else {
    ASSAY_PROBE2(profile_dump, kind, path.c_str());
    if (written != nullptr) *written = path;
  }
  return rc;
}

void RestartFileNumbers() { __atomic_store_n(&g_seq, 0, __ATOMIC_RELAXED); }

int WriteProfile(const char* kind, const char* path) {
  if (!ValidKind(kind)) return EINVAL;
  if (GetClockState().since_ns == 0) return ENOENT;  // nothing was ever profiled
  // No path: the next MALLOC_PROF name (the default prefix without MALLOC_PROF).
  return Dump(kind, path, nullptr);
}

void* PprofSymbol(const char* name, bool may_load) {
  ScopedSuspend suspend;
  LockGuard lock(g_dump_mu);
  return plugin::Symbol(name, may_load);
}

int WriteProfileData(const AssayProfileData* data, const char* path) {
  ScopedSuspend suspend;
  LockGuard lock(g_dump_mu);
  AssayProfileData d = *data;
  if (d.time_nanos == 0) d.time_nanos = NowWallNs();
  std::string why;
  const int rc = plugin::CallWriter(d, path, &why);
  if (rc != 0) {
    const std::string line = "assay: cannot write " + std::string(d.kind) + " profile " +
                             std::string(path) + ": " + why + "\n";
    internal::os::WriteStderr(line.c_str());
  }
  return rc;
}

snapshot::Snapshot* TakeSnapshot() {
  ScopedSuspend suspend;
  auto* s = new Snapshot;
  snapshot::Take(s, /*cumulative=*/true);
  return s;
}

void FreeSnapshot(snapshot::Snapshot* s) {
  ScopedSuspend suspend;
  delete s;
}

int ProfileBytes(const char* kind, const snapshot::Snapshot* before, const uint32_t* closed,
                 std::string* out, std::string* error) {
  if (kind == nullptr || (std::strcmp(kind, "heap") != 0 && std::strcmp(kind, "alloc") != 0)) {
    *error = "unknown profile kind";
    return EINVAL;
  }
  if (GetClockState().since_ns == 0) {
    *error = "nothing is being profiled";
    return ENOENT;
  }
  ScopedSuspend suspend;
  Snapshot now;
  snapshot::Take(&now, /*cumulative=*/true);
  LockGuard lock(g_dump_mu);
  if (closed != nullptr && __atomic_load_n(closed, __ATOMIC_ACQUIRE) != 0) {
    *error = "the process is exiting";
    return ESHUTDOWN;
  }
  snapshot::Built built;
  if (before != nullptr) {
    snapshot::BuildDelta(*before, now, kind, NowWallNs(), now.taken_ns - before->taken_ns, &built);
  } else {
    snapshot::Build(now, kind, NowWallNs(), internal::os::NowNs(), &built);
  }
  return plugin::CallSerializer(built.data, out, error);
}

void Quiesce() {
  ScopedSuspend suspend;
  LockGuard lock(g_dump_mu);
}

}  // namespace assay::profiler::dumper

// ---- Public API ----

namespace assay {

int ProfileTo(const char* kind, std::string* out) {
  if (out == nullptr) return EINVAL;
  std::string error;
  return profiler::dumper::ProfileBytes(kind, nullptr, nullptr, out, &error);
}

int WriteProfile(const char* kind, const char* path) {
  return profiler::dumper::WriteProfile(kind, path);
}

void ResetAllocationProfile() { profiler::ResetAllocationProfile(); }

}  // namespace assay

extern "C" __attribute__((visibility("default"))) int assay_write_profile(const char* kind,
                                                                          const char* path) {
  return assay::profiler::dumper::WriteProfile(kind, path);
}

extern "C" __attribute__((visibility("default"))) int assay_profile_to_fd(const char* kind,
                                                                          int fd) {
  std::string bytes, error;
  int rc;
  {
    assay::profiler::ScopedSuspend suspend;  // the bytes' buffer is the profiler's own
    rc = assay::profiler::dumper::ProfileBytes(kind, nullptr, nullptr, &bytes, &error);
    if (rc == 0 && !assay::internal::os::WriteAll(fd, bytes.data(), bytes.size())) rc = errno;
    std::string().swap(bytes);
  }
  return rc;
}
