// peak_rss N PRELOAD cmd...: runs cmd N times with LD_PRELOAD=PRELOAD ("" for
// none) set in the child only (this harness stays on glibc, and its own pages
// count in the child's peak until exec), prints the median ru_maxrss in KiB.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static int Compare(const void* a, const void* b) {
  const long x = *(const long*)a, y = *(const long*)b;
  return (x > y) - (x < y);
}

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: peak_rss N PRELOAD cmd...\n");
    return 2;
  }
  const int n = atoi(argv[1]);
  if (n < 1 || n > 99) return 2;
  long peak[99];
  for (int i = 0; i < n; ++i) {
    const pid_t pid = fork();
    if (pid == 0) {
      const int fd = open("/dev/null", O_WRONLY);
      dup2(fd, 1);
      if (argv[2][0] != '\0') setenv("LD_PRELOAD", argv[2], 1);
      execvp(argv[3], argv + 3);
      _exit(127);
    }
    int status;
    struct rusage ru;
    if (pid < 0 || wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
      fprintf(stderr, "peak_rss: %s failed\n", argv[3]);
      return 1;
    }
    peak[i] = ru.ru_maxrss;
  }
  qsort(peak, n, sizeof(long), Compare);
  printf("%ld\n", peak[n / 2]);
  return 0;
}
