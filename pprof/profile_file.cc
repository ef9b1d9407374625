// The profile-file writer (profile_file.h): an unpredictable temporary name
// created exclusively beside the target, written fully, renamed into place;
// removed again on any failure.
#include "pprof/profile_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>

namespace assay::pprof {
namespace {

// Random characters in a temporary name: 16 of 64 symbols, 96 bits.
constexpr size_t kRandomChars = 16;
constexpr char kSymbols[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static_assert(sizeof(kSymbols) - 1 == 64);
constexpr char kTmpMark[] = ".tmp.";

// Names that exist already (a collision, or names planted by someone
// else) are drawn again up to this many times before EEXIST is returned.
constexpr int kAttempts = 100;

RandomFillFn g_random_for_testing = nullptr;

int FillFromKernel(void* buf, size_t len) {
  auto* p = static_cast<unsigned char*>(buf);
  size_t done = 0;
  while (done < len) {
    const ssize_t r = getrandom(p + done, len - done, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    done += static_cast<size_t>(r);
  }
  if (done == len) return 0;
  // No getrandom (old kernel, seccomp): /dev/urandom.
  const int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return errno;
  while (done < len) {
    const ssize_t r = read(fd, p + done, len - done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    done += static_cast<size_t>(r);
  }
  close(fd);
  return done == len ? 0 : EIO;
}

// Last resort when the kernel gives no randomness (a chroot without /dev
// under a filter that refuses getrandom): a guessable name is still safe,
// since the file is created exclusively and never through a symlink; at
// worst a squatter makes the write fail.
void FillFromClock(void* buf, size_t len) {
  static uint64_t counter = 0;  // atomic
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t x = static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
  x ^= static_cast<uint64_t>(getpid()) << 40;
  x ^= __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED) * 0x9E3779B97F4A7C15ull;
  auto* p = static_cast<unsigned char*>(buf);
  for (size_t i = 0; i < len; ++i) {
    // splitmix64 steps
    x += 0x9E3779B97F4A7C15ull;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    p[i] = static_cast<unsigned char>(z ^ (z >> 31));
  }
}

// kRandomChars symbols, 6 random bits each.
void RandomSuffix(char* out) {
  unsigned char bytes[kRandomChars * 6 / 8];
  const int rc = g_random_for_testing != nullptr ? g_random_for_testing(bytes, sizeof(bytes))
                                                 : FillFromKernel(bytes, sizeof(bytes));
  if (rc != 0) FillFromClock(bytes, sizeof(bytes));
  for (size_t i = 0; i < kRandomChars; ++i) {
    const size_t bit = i * 6;
    const unsigned v =
        (bytes[bit / 8] | (bit / 8 + 1 < sizeof(bytes) ? bytes[bit / 8 + 1] << 8 : 0)) >> (bit % 8);
    out[i] = kSymbols[v & 63];
  }
}

}  // namespace

void SetRandomSourceForTesting(RandomFillFn fill) { g_random_for_testing = fill; }

int CreateTempFileBeside(const char* path, mode_t mode, std::string* tmp_path) {
  const char* slash = strrchr(path, '/');
  const std::string dir(path, slash != nullptr ? static_cast<size_t>(slash - path) + 1 : 0);
  std::string name(slash != nullptr ? slash + 1 : path);
  const size_t extra = sizeof(kTmpMark) - 1 + kRandomChars;
  if (name.size() + extra > NAME_MAX) name.resize(NAME_MAX - extra);
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    char suffix[kRandomChars];
    RandomSuffix(suffix);
    std::string tmp = dir + name + kTmpMark;
    tmp.append(suffix, kRandomChars);
    // 0600 while it is written, whatever `mode` asks for at the end.
    const int fd =
        open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0) {
      if (errno == EEXIST) continue;
      return -errno;
    }
    // The umask may have taken bits from the mode open applied; set it whole.
    if (fchmod(fd, mode & 07777) != 0) {
      const int e = errno;
      close(fd);
      unlink(tmp.c_str());
      return -e;
    }
    *tmp_path = std::move(tmp);
    return fd;
  }
  return -EEXIST;
}

namespace {

// Writes all of data to fd (retrying after EINTR and short writes): 0 or an
// errno value.
int WriteAllTo(int fd, const void* data, size_t size) {
  const auto* p = static_cast<const char*>(data);
  size_t done = 0;
  while (done < size) {
    const ssize_t w = write(fd, p + done, size - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return w < 0 ? errno : ENOSPC;
    done += static_cast<size_t>(w);
  }
  return 0;
}

}  // namespace

int WriteFileReplacing(const char* path, const void* data, size_t size, mode_t mode, char* err,
                       size_t errlen) {
  // A target that exists and is not a regular file (or a symlink, which the
  // rename replaces) is never replaced: renaming over /dev/null as root
  // turned the device into a plain file that every later writer filled. A
  // character device or a FIFO (/dev/null, a pipe) is written to directly,
  // opened without following a symlink and without creating anything;
  // anything else (a directory, a socket) is refused.
  struct stat st;
  if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
    if (!S_ISCHR(st.st_mode) && !S_ISFIFO(st.st_mode)) {
      snprintf(err, errlen, "cannot write %s: not a regular file, device or FIFO", path);
      return EINVAL;
    }
    const int fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
      const int e = errno;
      snprintf(err, errlen, "cannot open %s: %s", path, strerror(e));
      return e;
    }
    int e = WriteAllTo(fd, data, size);
    if (close(fd) != 0 && e == 0 && errno != EINTR) e = errno;
    if (e != 0) snprintf(err, errlen, "cannot write %s: %s", path, strerror(e));
    return e;
  }
  std::string tmp;
  const int fd = CreateTempFileBeside(path, mode, &tmp);
  if (fd < 0) {
    snprintf(err, errlen, "cannot create a temporary file beside %s: %s", path, strerror(-fd));
    return -fd;
  }
  const auto* p = static_cast<const char*>(data);
  size_t done = 0;
  int e = 0;
  while (done < size) {
    const ssize_t w = write(fd, p + done, size - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      e = w < 0 ? errno : ENOSPC;
      break;
    }
    done += static_cast<size_t>(w);
  }
  // close reports delayed write errors (NFS, quotas); EINTR still closed it.
  if (close(fd) != 0 && e == 0 && errno != EINTR) e = errno;
  if (e != 0) {
    unlink(tmp.c_str());
    snprintf(err, errlen, "cannot write %s (temporary file %s): %s", path, tmp.c_str(),
             strerror(e));
    return e;
  }
  // rename replaces whatever is at path, a symlink included, without
  // following it.
  if (rename(tmp.c_str(), path) != 0) {
    e = errno;
    unlink(tmp.c_str());
    snprintf(err, errlen, "cannot rename %s to %s: %s", tmp.c_str(), path, strerror(e));
    return e;
  }
  return 0;
}

}  // namespace assay::pprof
