// Helpers shared by the test programs (unit and stress). Header-only; none
// of them allocates, so they are safe to call while measuring the heap, in
// a forked child of a threaded process, or in the middle of a workload.
#ifndef ASSAY_TESTS_TEST_UTIL_H_
#define ASSAY_TESTS_TEST_UTIL_H_

#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

namespace assay_test {

constexpr size_t kKiB = size_t{1} << 10;
constexpr size_t kMiB = size_t{1} << 20;

// VmRSS of this process in bytes, read from /proc/self/status with open and
// read into a stack buffer. Returns 0 if it cannot be read; then, if `error`
// is not null, *error says why ("cannot open /proc/self/status" or "no VmRSS
// line in /proc/self/status"), and it is left untouched otherwise.
inline size_t ResidentBytes(const char** error = nullptr) {
  const int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (error != nullptr) *error = "cannot open /proc/self/status";
    return 0;
  }
  char buf[4096];
  size_t len = 0;
  while (len < sizeof(buf) - 1) {
    const ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
    if (n <= 0) break;
    len += static_cast<size_t>(n);
  }
  close(fd);
  buf[len] = '\0';
  const char* line = strstr(buf, "VmRSS:");
  if (line == nullptr) {
    if (error != nullptr) *error = "no VmRSS line in /proc/self/status";
    return 0;
  }
  return strtoull(line + 6, nullptr, 10) * kKiB;
}

// Runs body in a forked child (options, purger and caches of its own) and
// returns the child's exit status: 0 when body returned, its own _exit code
// otherwise, -1 if the fork failed or the child died of a signal.
inline int RunInChild(void (*body)()) {
  fflush(stdout);
  const pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    body();
    _exit(0);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

}  // namespace assay_test

#endif  // ASSAY_TESTS_TEST_UTIL_H_
