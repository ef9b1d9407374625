// measure: runs a program and reports its wall time and peak RSS, for
// tools/bench/compare.
//
//   measure [-t TIMEOUT_S] [-e NAME=VALUE]... OUTFILE -- PROGRAM [ARG...]
//
// Writes "STATUS SECONDS MAXRSS_KIB\n" to OUTFILE: STATUS is the exit status
// (128+N for a signal N, 124 after a timeout, 127 if the exec failed),
// SECONDS the wall time from fork to wait4, MAXRSS_KIB ru_maxrss from wait4
// (the program's peak RSS, or the largest of it and its waited-for children).
// -e sets an environment variable in the program only (so LD_PRELOAD does not
// load an allocator into measure itself).
//
// Why not measure from Python directly: Linux carries the resident peak of
// the process that forks into the child's ru_maxrss across exec, so any
// child of a Python process reports at least the interpreter's RSS. measure
// is small, so its children report their own peak.
#include <signal.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

pid_t g_child = 0;
volatile sig_atomic_t g_timed_out = 0;

void OnAlarm(int) {
  g_timed_out = 1;
  if (g_child > 0) kill(-g_child, SIGKILL);
}

double Now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

int Usage() {
  fprintf(stderr, "usage: measure [-t TIMEOUT_S] [-e NAME=VALUE]... OUTFILE -- PROGRAM [ARG...]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  unsigned timeout = 0;
  int envc = 0;
  char** envs = static_cast<char**>(calloc(static_cast<size_t>(argc), sizeof(char*)));
  int i = 1;
  for (; i < argc && argv[i][0] == '-' && strcmp(argv[i], "--") != 0; i += 2) {
    if (i + 1 >= argc) return Usage();
    if (strcmp(argv[i], "-t") == 0) {
      timeout = static_cast<unsigned>(atoi(argv[i + 1]));
    } else if (strcmp(argv[i], "-e") == 0 && strchr(argv[i + 1], '=') != nullptr) {
      envs[envc++] = argv[i + 1];
    } else {
      return Usage();
    }
  }
  if (i + 2 >= argc || strcmp(argv[i + 1], "--") != 0) return Usage();
  const char* outfile = argv[i];
  char** prog = argv + i + 2;

  const double t0 = Now();
  g_child = fork();
  if (g_child < 0) {
    perror("measure: fork");
    return 1;
  }
  if (g_child == 0) {
    setpgid(0, 0);  // so a timeout kills the program and its children
    for (int k = 0; k < envc; ++k) putenv(envs[k]);
    execvp(prog[0], prog);
    fprintf(stderr, "measure: cannot run %s: %s\n", prog[0], strerror(errno));
    _exit(127);
  }
  setpgid(g_child, g_child);
  signal(SIGALRM, OnAlarm);
  if (timeout > 0) alarm(timeout);
  int status = 0;
  rusage ru{};
  while (wait4(g_child, &status, 0, &ru) < 0) {
    if (errno != EINTR) {
      perror("measure: wait4");
      return 1;
    }
  }
  const double seconds = Now() - t0;
  alarm(0);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (g_timed_out) code = 124;
  FILE* f = fopen(outfile, "w");
  if (f == nullptr) {
    perror("measure: output file");
    return 1;
  }
  fprintf(f, "%d %.6f %ld\n", code, seconds, ru.ru_maxrss);
  fclose(f);
  return 0;
}
