#include "tools/assay/profile_files.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>

namespace assay::cli {
namespace {

// Digits at name[*pos] up to the next '.', which is consumed.
bool Number(const std::string& name, size_t* pos, uint64_t* out) {
  const size_t start = *pos;
  uint64_t v = 0;
  while (*pos < name.size() && name[*pos] >= '0' && name[*pos] <= '9') {
    if (v > (uint64_t{1} << 60)) return false;
    v = v * 10 + static_cast<uint64_t>(name[*pos] - '0');
    ++*pos;
  }
  if (*pos == start || *pos >= name.size() || name[*pos] != '.') return false;
  ++*pos;
  *out = v;
  return true;
}

}  // namespace

bool ParseProfileFileName(const std::string& name, const std::string& base, ProfileFile* out) {
  if (name.size() <= base.size() + 1 || name.compare(0, base.size(), base) != 0 ||
      name[base.size()] != '.')
    return false;
  size_t pos = base.size() + 1;
  uint64_t pid = 0, seq = 0;
  if (!Number(name, &pos, &pid) || !Number(name, &pos, &seq)) return false;
  static const char* const kKinds[] = {"heap", "alloc", "peak", "leak"};
  for (const char* kind : kKinds) {
    if (name.compare(pos, std::string::npos, std::string(kind) + ".pb.gz") == 0) {
      out->pid = static_cast<long>(pid);
      out->seq = seq;
      out->kind = kind;
      return true;
    }
  }
  return false;
}

std::vector<ProfileFile> FindProfileFiles(const std::string& prefix, const timespec& since) {
  const size_t slash = prefix.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : prefix.substr(0, slash);
  const std::string base = slash == std::string::npos ? prefix : prefix.substr(slash + 1);
  std::vector<ProfileFile> files;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return files;
  while (const dirent* e = readdir(d)) {
    ProfileFile f;
    const std::string name = e->d_name;
    if (!ParseProfileFileName(name, base, &f)) continue;
    f.path = prefix + name.substr(base.size());
    struct stat st {};
    if (stat(f.path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    f.mtime = st.st_mtim;
    if (f.mtime.tv_sec < since.tv_sec ||
        (f.mtime.tv_sec == since.tv_sec && f.mtime.tv_nsec < since.tv_nsec))
      continue;
    files.push_back(std::move(f));
  }
  closedir(d);
  std::sort(files.begin(), files.end(), [](const ProfileFile& a, const ProfileFile& b) {
    return a.pid != b.pid ? a.pid < b.pid : a.seq < b.seq;
  });
  return files;
}

}  // namespace assay::cli
