// `assay run`: runs a program with libassay.so preloaded and MALLOC_PROF set
// from the options, forwards its exit status, and says where the profiles went.
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "tools/assay/args.h"
#include "tools/assay/commands.h"
#include "tools/assay/format.h"
#include "tools/assay/profile_files.h"
#include "tools/assay/profile_io.h"
#include "tools/assay/report.h"

namespace assay::cli {
namespace {

// Profile files listed per process before the list is shortened.
constexpr size_t kListed = 12;

volatile sig_atomic_t g_child = 0;

void ForwardSignal(int sig) {
  if (g_child > 0) kill(static_cast<pid_t>(g_child), sig);
}

bool Exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string RealPath(const std::string& path) {
  char buf[PATH_MAX];
  return realpath(path.c_str(), buf) != nullptr ? std::string(buf) : path;
}

// libassay.so: $ASSAY_LIB, else next to this executable (a build tree), else
// the installed runtime library, found from this executable's own directory
// by the relative path from bindir to libdir baked in by CMake (so a moved
// or packaged prefix still works). The installed name is the soname's: the
// runtime package carries libassay.so.N, and only -dev the libassay.so link.
std::string FindLibrary() {
  const char* env = getenv("ASSAY_LIB");
  if (env != nullptr && *env != '\0') {
    if (!Exists(env))
      throw Failure(std::string("ASSAY_LIB is set to '") + env + "', which is not a file");
    return RealPath(env);
  }
  char exe[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) throw Failure(std::string("cannot read /proc/self/exe: ") + strerror(errno));
  std::string dir(exe, static_cast<size_t>(n));
  dir = dir.substr(0, dir.find_last_of('/'));
  const std::string beside = dir + "/libassay.so";
  if (Exists(beside)) return beside;
  const std::string installed = dir + "/" ASSAY_BIN_TO_LIBDIR "/" ASSAY_SONAME;
  // The directory made canonical, the soname kept (not the versioned file).
  if (Exists(installed)) return RealPath(dir + "/" ASSAY_BIN_TO_LIBDIR) + "/" ASSAY_SONAME;
  throw Failure("cannot find libassay.so: not at " + beside +
                " (next to the assay binary) nor at " + installed +
                " (installed); set ASSAY_LIB to its path");
}

// Creates the prefix's directory (and its parents) if missing, each mode
// 0700: profiles show the program's code and data layout to whoever can list
// and read them. Directories that exist already are left as they are.
void MakeDirectoryOf(const std::string& prefix) {
  const size_t slash = prefix.find_last_of('/');
  if (slash == std::string::npos || slash == 0) return;
  const std::string dir = prefix.substr(0, slash);
  for (size_t pos = 0; pos != std::string::npos;) {
    pos = dir.find('/', pos + 1);
    const std::string part = dir.substr(0, pos);
    if (mkdir(part.c_str(), 0700) != 0) {
      if (errno == EEXIST) continue;
      throw Failure("cannot create the directory " + part + " for --prefix: " + strerror(errno));
    }
    // Exactly 0700 whatever the umask; through a descriptor of the directory
    // just made (O_NOFOLLOW: never the target of a symlink put in its place).
    const int fd = open(part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fchmod(fd, 0700) != 0) {
      const int e = errno;
      if (fd >= 0) close(fd);
      throw Failure("cannot set mode 0700 on the directory " + part +
                    " for --prefix: " + strerror(e));
    }
    close(fd);
  }
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw Failure("--prefix: " + dir + " is not a directory");
}

// `s` quoted for a POSIX shell when it needs it.
std::string ShellQuote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                        "0123456789_./:=+-%@,") == std::string::npos)
    return s;
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string Summary(const ProfileFile& f) {
  try {
    const pb::Profile p = ReadProfile(f.path);
    const int t = DefaultSampleType(p);
    return FormatValue(Total(p, t), StringAt(p, p.sample_type(t).unit())) + " " +
           StringAt(p, p.sample_type(t).type());
  } catch (const Failure& e) {
    return std::string("unreadable: ") + e.what();
  }
}

void List(const std::vector<const ProfileFile*>& files) {
  size_t width = 0;
  for (const ProfileFile* f : files) width = std::max(width, f->path.size());
  const size_t skip = files.size() > kListed ? files.size() - kListed : 0;
  if (skip > 0) fprintf(stderr, "  (%zu earlier ones not listed)\n", skip);
  for (size_t i = skip; i < files.size(); ++i) {
    const ProfileFile& f = *files[i];
    fprintf(stderr, "  %-*s  %-5s  %s\n", static_cast<int>(width), f.path.c_str(), f.kind.c_str(),
            Summary(f).c_str());
  }
}

void Report(const std::string& prefix, const timespec& since, pid_t child) {
  const std::vector<ProfileFile> files = FindProfileFiles(prefix, since);
  std::vector<const ProfileFile*> own, others;
  for (const ProfileFile& f : files) (f.pid == child ? own : others).push_back(&f);
  if (files.empty()) {
    fprintf(stderr,
            "assay: no profile was written (%s.%d.*.pb.gz): a program that ends with _exit() "
            "or by a signal skips the profile at exit (--period or --interval write some "
            "before), and a static or setuid program ignores LD_PRELOAD\n",
            prefix.c_str(), static_cast<int>(child));
    return;
  }
  if (!own.empty()) {
    fprintf(stderr, "assay: %zu profile%s of process %d:\n", own.size(), own.size() == 1 ? "" : "s",
            static_cast<int>(child));
    List(own);
  }
  if (!others.empty()) {
    fprintf(stderr, "assay: %zu profile%s of processes it started:\n", others.size(),
            others.size() == 1 ? "" : "s");
    List(others);
  }
  // The newest heap profile: the program's own last one, else the latest
  // written by any of its processes; without heap profiles, the newest of any kind.
  const ProfileFile* pick = nullptr;
  auto newer = [](const ProfileFile* a, const ProfileFile* b) {
    if (b == nullptr) return true;
    if (a->mtime.tv_sec != b->mtime.tv_sec) return a->mtime.tv_sec > b->mtime.tv_sec;
    return a->mtime.tv_nsec >= b->mtime.tv_nsec;
  };
  for (const auto* group : {&own, &others}) {
    for (const ProfileFile* f : *group) {
      if (f->kind == "heap" && (group == &own || newer(f, pick))) pick = f;
    }
    if (pick != nullptr) break;
  }
  if (pick == nullptr) {
    for (const ProfileFile& f : files) {
      if (newer(&f, pick)) pick = &f;
    }
  }
  fprintf(stderr, "assay: open the newest %s profile with:\n  go tool pprof -http=: %s\n",
          pick->kind.c_str(), ShellQuote(pick->path).c_str());
  fprintf(stderr, "  assay top %s\n", ShellQuote(pick->path).c_str());
}

int Run(const std::vector<std::string>& args) {
  std::string prefix = "./assay", v;
  std::vector<std::string> prof;  // MALLOC_PROF items
  ArgReader r(args);
  while (!r.Done()) {
    if (r.Flag("--")) break;
    if (r.Flag("-h") || r.Flag("--help")) throw HelpRequested();
    if (r.Value("--rate", &v)) {
      ParseSize("--rate", v, 1, int64_t{1} << 50);
      prof.push_back("rate=" + v);
    } else if (r.Value("--period", &v)) {
      ParseInt("--period", v, 0, 1 << 30);
      prof.push_back("period=" + v);
    } else if (r.Value("--interval", &v)) {
      ParseSize("--interval", v, 0, int64_t{1} << 50);
      prof.push_back("interval=" + v);
    } else if (r.Value("--depth", &v)) {
      ParseInt("--depth", v, 1, 256);
      prof.push_back("depth=" + v);
    } else if (r.Value("--prefix", &v)) {
      if (v.empty() || v.size() >= 512 || v.find(',') != std::string::npos)
        throw UsageError("bad --prefix '" + v + "' (a path prefix under 512 bytes, without ',')");
      prefix = v;
    } else if (r.Value("--http", &v)) {
      if (v.empty() || v.size() >= 128 || v.find(',') != std::string::npos)
        throw UsageError("bad --http '" + v +
                         "' (IP:PORT, [IPv6]:PORT or unix:/path, under 128 bytes, without ',')");
      prof.push_back("http=" + v);
    } else if (r.Flag("--http-remote")) {
      prof.push_back("http_remote=1");
    } else if (r.Flag("--leak")) {
      prof.push_back("leak=1");
    } else if (r.Flag("--peak")) {
      prof.push_back("peak=1");
    } else if (r.AtOption()) {
      throw UsageError("unknown option '" + r.Peek() + "'");
    } else {
      break;  // the program
    }
  }
  const std::vector<std::string> command = r.Rest();
  if (command.empty())
    throw UsageError("no program to run (assay run [OPTIONS] -- PROGRAM ARGS...)");
  prof.push_back("prefix=" + prefix);

  const std::string lib = FindLibrary();
  MakeDirectoryOf(prefix);
  std::string malloc_prof;
  // Keys already in MALLOC_PROF stay unless an option sets them (the last one wins).
  if (const char* old = getenv("MALLOC_PROF");
      old != nullptr && *old != '\0' && strcmp(old, "0") != 0 && strcmp(old, "1") != 0)
    malloc_prof = std::string(old) + ",";
  for (size_t i = 0; i < prof.size(); ++i) malloc_prof += (i > 0 ? "," : "") + prof[i];
  std::string preload = lib;
  if (const char* old = getenv("LD_PRELOAD"); old != nullptr && *old != '\0')
    preload += std::string(":") + old;
  setenv("LD_PRELOAD", preload.c_str(), 1);
  setenv("MALLOC_PROF", malloc_prof.c_str(), 1);

  std::vector<char*> argv;
  for (const std::string& a : command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  timespec since{};
  clock_gettime(CLOCK_REALTIME_COARSE, &since);  // the clock file times come from
  // The terminal's ^C and ^\ go to the program; assay waits and reports.
  struct sigaction ignore {
  }, old_int{}, old_quit{};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGINT, &ignore, &old_int);
  sigaction(SIGQUIT, &ignore, &old_quit);
  int exec_pipe[2];
  if (pipe2(exec_pipe, O_CLOEXEC) != 0) throw Failure(std::string("pipe: ") + strerror(errno));
  fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) throw Failure(std::string("fork: ") + strerror(errno));
  if (pid == 0) {
    sigaction(SIGINT, &old_int, nullptr);
    sigaction(SIGQUIT, &old_quit, nullptr);
    close(exec_pipe[0]);
    execvp(argv[0], argv.data());
    const int e = errno;
    (void)!write(exec_pipe[1], &e, sizeof(e));
    _exit(e == ENOENT ? 127 : 126);
  }
  g_child = pid;
  struct sigaction forward {};
  forward.sa_handler = ForwardSignal;
  sigemptyset(&forward.sa_mask);
  for (int sig : {SIGTERM, SIGHUP, SIGUSR1, SIGUSR2}) sigaction(sig, &forward, nullptr);
  close(exec_pipe[1]);
  int exec_errno = 0;
  ssize_t got;
  do {
    got = read(exec_pipe[0], &exec_errno, sizeof(exec_errno));
  } while (got < 0 && errno == EINTR);
  close(exec_pipe[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw Failure(std::string("waitpid: ") + strerror(errno));
  }
  g_child = 0;
  if (got == static_cast<ssize_t>(sizeof(exec_errno))) {
    fprintf(stderr, "assay run: cannot run %s: %s\n", command[0].c_str(), strerror(exec_errno));
    return exec_errno == ENOENT ? 127 : 126;
  }
  int rc = 0;
  if (WIFEXITED(status)) {
    rc = WEXITSTATUS(status);
    fprintf(stderr, "assay: %s (pid %d) exited with status %d\n", command[0].c_str(),
            static_cast<int>(pid), rc);
  } else if (WIFSIGNALED(status)) {
    rc = 128 + WTERMSIG(status);
    fprintf(stderr, "assay: %s (pid %d) was killed by signal %d (%s)\n", command[0].c_str(),
            static_cast<int>(pid), WTERMSIG(status), strsignal(WTERMSIG(status)));
  }
  Report(prefix, since, pid);
  return rc;
}

}  // namespace

const Command kRunCommand = {
    "run",
    "run a program with the heap profiler on and say where its profiles went",
    "usage: assay run [--rate SIZE] [--period SECS] [--interval SIZE] [--prefix P]\n"
    "                 [--leak] [--peak] [--depth N] [--http ADDR [--http-remote]]\n"
    "                 -- PROGRAM [ARGS...]",
    "Runs PROGRAM with libassay.so preloaded (LD_PRELOAD, ahead of any already\n"
    "set) and MALLOC_PROF built from the options, waits for it and exits with its\n"
    "status (128+N if signal N killed it). Then it lists, on stderr, the profiles\n"
    "the program and the processes it started wrote, and the command that opens\n"
    "the newest heap profile.\n"
    "\n"
    "  --rate SIZE      mean bytes allocated between samples (default 512k)\n"
    "  --period SECS    also write a heap profile every SECS seconds\n"
    "  --interval SIZE  also write a heap profile after every SIZE bytes allocated\n"
    "  --prefix P       profile files are P.<pid>.<seq>.<kind>.pb.gz (default\n"
    "                   ./assay, in the current directory); missing directories\n"
    "                   are created, mode 0700; profiles are mode 0600\n"
    "  --leak           at exit, a leak profile of sampled blocks never freed\n"
    "  --peak           a peak profile each time the live heap grows 10% past\n"
    "                   the last peak\n"
    "  --depth N        stack frames kept, 1 to 256 (default 64)\n"
    "  --http ADDR      serve the profiles over HTTP while it runs, at Go's paths\n"
    "                   (/debug/pprof/heap, /debug/pprof/allocs): ADDR is\n"
    "                   127.0.0.1:PORT, [::1]:PORT or unix:/path (mode 0600)\n"
    "  --http-remote    allow an --http address other than loopback\n"
    "\n"
    "SIZE takes a k, m or g suffix. A heap profile is always written at exit.\n"
    "Other MALLOC_PROF keys already in the environment are kept. The library\n"
    "preloaded is $ASSAY_LIB if set, else libassay.so next to the assay binary\n"
    "(a build tree), else the installed " ASSAY_SONAME " (" ASSAY_BIN_TO_LIBDIR
    "/ from the\n"
    "binary's directory).\n"
    "\n"
    "Example:\n"
    "  assay run --rate 64k --period 5 -- python3 server.py\n",
    Run,
};

}  // namespace assay::cli
