// MALLOC_PROF: turns profiling on with no code change. Parsed once at
// start-up without allocating. Grammar: `1`, or comma-separated key=value:
//   rate=SIZE      mean bytes between sample points (default 512k; 1 = every allocation)
//   interval=SIZE  dump a heap profile after every SIZE bytes allocated (0: off)
//   period=SECS    dump a heap profile every SECS seconds (0: off)
//   prefix=PATH    file prefix (default ./assay): PATH.<pid>.<seq>.<kind>.pb.gz
//   final=0|1      heap profile at exit (default 1)
//   peak=0|1       peak profile when the estimated live heap grows 10% past the last peak
//   leak=0|1       at exit, a profile of sampled blocks never freed, and a summary line
//   depth=N        stack frames kept (1..256, default 64)
//   seed=N         sampling seed (default: from the clock)
//   young=SIZE     promotion age in bytes of allocation (default 128 * rate)
//   signal=NAME    dump a heap profile on that signal (USR1, USR2, HUP, ... or a number)
//   stack=unwind|fp  stack capture method (default unwind)
//   http=ADDR      serve /debug/pprof/{heap,allocs} on ADDR (IP:PORT, [IPv6]:PORT,
//                  unix:/path); http_server.h
//   http_remote=0|1  allow http= on an address other than loopback (default 0)
//   mode=OCTAL     permission bits of the profile files (default 0600)
// SIZE takes k/m/g suffixes. A bad value prints one line on stderr naming the
// key and the accepted form, and the program runs unprofiled.
#pragma once

#include <cstddef>
#include <cstdint>

namespace assay::profiler {

struct ProfConfig {
  bool enabled = false;
  uint64_t rate = 512 * 1024;
  uint64_t interval = 0;
  uint64_t period_s = 0;
  char prefix[512] = "./assay";
  bool final_dump = true;
  bool peak = false;
  bool leak = false;
  int depth = 64;
  uint64_t seed = 0;
  uint64_t young = 0;
  int signal = 0;
  int stack_method = 0;  // StackMethod
  char http[128] = "";   // http=ADDR, or empty: no endpoint
  bool http_remote = false;
  int file_mode = 0;  // mode=: permission bits of profile files; 0 means 0600
};

// Parses `text` (MALLOC_PROF's value, may be null). Returns false after
// printing one line on stderr if it is malformed; *out is then disabled.
bool ParseProfConfig(const char* text, ProfConfig* out);

}  // namespace assay::profiler
