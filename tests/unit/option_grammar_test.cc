// Golden data for the three option grammars (ASSAY_OPTIONS, MALLOC_PROF,
// ASSAY_DEBUG): every key's accepted forms and the values they give, and the
// exact stderr line of each kind of bad item. Written against the original
// hand-written parsers, so that the shared option table keeps their behaviour.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <string>

#include "base/options.h"
#include "debug_heap/debug.h"
#include "profiler/prof_config.h"

namespace assay {
namespace {

using internal::Options;
using internal::debug::Config;
using profiler::ProfConfig;

// Runs fn with file descriptor 2 sent to a pipe; returns what it wrote there.
std::string CaptureStderr(const std::function<void()>& fn) {
  int p[2];
  EXPECT_EQ(pipe(p), 0);
  const int saved = dup(2);
  dup2(p[1], 2);
  close(p[1]);
  fn();
  dup2(saved, 2);
  close(saved);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(p[0], buf, sizeof(buf))) > 0;) out.append(buf, static_cast<size_t>(n));
  close(p[0]);
  return out;
}

// ============================== ASSAY_OPTIONS ==============================

std::string OptUnknown(const std::string& key) {
  return "assay: ASSAY_OPTIONS: unknown key '" + key + "'; keeping the default\n";
}
std::string OptBad(const std::string& key, const std::string& form) {
  return "assay: ASSAY_OPTIONS: bad value for '" + key + "' (expected " + form +
         "); keeping the default\n";
}
const char kDecayForm[] = "milliseconds, -1 (never) or more";
const char kBoolForm[] = "0 or 1";
const char kBytesForm[] = "bytes with optional k/m/g suffix";

struct OptCase {
  const char* text;
  int64_t decay_ms;
  int64_t background_thread;
  int64_t thread_cache_bytes;
  int64_t stats_at_exit;
  std::string err;
};

void CheckOpt(const OptCase& c) {
  Options o;
  const std::string err = CaptureStderr([&] { internal::ParseOptions(c.text, &o); });
  const char* text = c.text != nullptr ? c.text : "(null)";
  EXPECT_EQ(err, c.err) << text;
  EXPECT_EQ(o.decay_ms, c.decay_ms) << text;
  EXPECT_EQ(o.background_thread, c.background_thread) << text;
  EXPECT_EQ(o.thread_cache_bytes, c.thread_cache_bytes) << text;
  EXPECT_EQ(o.stats_at_exit, c.stats_at_exit) << text;
}

constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kTiB = int64_t{1} << 40;

TEST(AssayOptionsGrammar, Defaults) {
  CheckOpt({nullptr, 10, 1, 4 * kMiB, 0, ""});
  CheckOpt({"", 10, 1, 4 * kMiB, 0, ""});
}

TEST(AssayOptionsGrammar, AcceptedForms) {
  const OptCase cases[] = {
      {"decay_ms=250", 250, 1, 4 * kMiB, 0, ""},
      {"decay_ms=0", 0, 1, 4 * kMiB, 0, ""},
      {"decay_ms=-1", -1, 1, 4 * kMiB, 0, ""},
      {"decay_ms=1k", 1024, 1, 4 * kMiB, 0, ""},
      {"decay_ms=1099511627776", kTiB, 1, 4 * kMiB, 0, ""},
      {"decay_ms=1024g", kTiB, 1, 4 * kMiB, 0, ""},
      {"background_thread=0", 10, 0, 4 * kMiB, 0, ""},
      {"background_thread=1", 10, 1, 4 * kMiB, 0, ""},
      {"thread_cache_bytes=1m", 10, 1, kMiB, 0, ""},
      {"thread_cache_bytes=1M", 10, 1, kMiB, 0, ""},
      {"thread_cache_bytes=4K", 10, 1, 4096, 0, ""},
      {"thread_cache_bytes=2g", 10, 1, int64_t{2} << 30, 0, ""},
      {"thread_cache_bytes=0", 10, 1, 0, 0, ""},
      {"thread_cache_bytes=1500", 10, 1, 1500, 0, ""},
      {"thread_cache_bytes=1024G", 10, 1, kTiB, 0, ""},
      {"stats_at_exit=1", 10, 1, 4 * kMiB, 1, ""},
      {"stats_at_exit=0", 10, 1, 4 * kMiB, 0, ""},
      {"decay_ms=250,background_thread=0,thread_cache_bytes=1m,stats_at_exit=1", 250, 0, kMiB, 1,
       ""},
      // Empty items are skipped; a repeated key takes its last value.
      {",,decay_ms=5,,", 5, 1, 4 * kMiB, 0, ""},
      {",", 10, 1, 4 * kMiB, 0, ""},
      {"decay_ms=5,decay_ms=7", 7, 1, 4 * kMiB, 0, ""},
  };
  for (const OptCase& c : cases) CheckOpt(c);
}

TEST(AssayOptionsGrammar, BadForms) {
  const OptCase cases[] = {
      {"colour=blue", 10, 1, 4 * kMiB, 0, OptUnknown("colour")},
      {"colour", 10, 1, 4 * kMiB, 0, OptUnknown("colour")},
      {"DECAY_MS=5", 10, 1, 4 * kMiB, 0, OptUnknown("DECAY_MS")},
      {"=5", 10, 1, 4 * kMiB, 0, OptUnknown("")},
      {"decay_ms", 10, 1, 4 * kMiB, 0, OptBad("decay_ms", kDecayForm)},
      {"decay_ms=", 10, 1, 4 * kMiB, 0, OptBad("decay_ms", kDecayForm)},
      {"decay_ms=soon", 10, 1, 4 * kMiB, 0, OptBad("decay_ms", kDecayForm)},
      {"decay_ms=-2", 10, 1, 4 * kMiB, 0, OptBad("decay_ms", kDecayForm)},
      {"decay_ms=1099511627777", 10, 1, 4 * kMiB, 0, OptBad("decay_ms", kDecayForm)},
      {"decay_ms=10x", 10, 1, 4 * kMiB, 0, OptBad("decay_ms", kDecayForm)},
      {"decay_ms=1kb", 10, 1, 4 * kMiB, 0, OptBad("decay_ms", kDecayForm)},
      {"decay_ms= 5", 10, 1, 4 * kMiB, 0, OptBad("decay_ms", kDecayForm)},
      {"decay_ms=5 ", 10, 1, 4 * kMiB, 0, OptBad("decay_ms", kDecayForm)},
      {"decay_ms=5=6", 10, 1, 4 * kMiB, 0, OptBad("decay_ms", kDecayForm)},
      {"background_thread=2", 10, 1, 4 * kMiB, 0, OptBad("background_thread", kBoolForm)},
      {"background_thread=-1", 10, 1, 4 * kMiB, 0, OptBad("background_thread", kBoolForm)},
      {"background_thread=1k", 10, 1, 4 * kMiB, 0, OptBad("background_thread", kBoolForm)},
      {"background_thread=yes", 10, 1, 4 * kMiB, 0, OptBad("background_thread", kBoolForm)},
      {"thread_cache_bytes=-1", 10, 1, 4 * kMiB, 0, OptBad("thread_cache_bytes", kBytesForm)},
      {"thread_cache_bytes=1.5m", 10, 1, 4 * kMiB, 0, OptBad("thread_cache_bytes", kBytesForm)},
      {"thread_cache_bytes=1025g", 10, 1, 4 * kMiB, 0, OptBad("thread_cache_bytes", kBytesForm)},
      {"thread_cache_bytes=k", 10, 1, 4 * kMiB, 0, OptBad("thread_cache_bytes", kBytesForm)},
      {"thread_cache_bytes=99999999999999999999", 10, 1, 4 * kMiB, 0,
       OptBad("thread_cache_bytes", kBytesForm)},
      {"stats_at_exit=yes", 10, 1, 4 * kMiB, 0, OptBad("stats_at_exit", kBoolForm)},
  };
  for (const OptCase& c : cases) CheckOpt(c);
}

TEST(AssayOptionsGrammar, OneLinePerBadItemAndTheRestApply) {
  CheckOpt({"decay_ms=soon,colour=blue,background_thread=7,thread_cache_bytes=2k,stats_at_exit=1",
            10, 1, 2048, 1,
            OptBad("decay_ms", kDecayForm) + OptUnknown("colour") +
                OptBad("background_thread", kBoolForm)});
  // A bad value keeps what the key held before it (an earlier good value).
  CheckOpt({"decay_ms=5,decay_ms=x", 5, 1, 4 * kMiB, 0, OptBad("decay_ms", kDecayForm)});
}

TEST(AssayOptionsGrammar, HardenAndDoubleFree) {
  Options o;
  EXPECT_EQ(o.harden, 0);
  EXPECT_EQ(o.double_free, 1);
  std::string err = CaptureStderr([&] { internal::ParseOptions("harden=1,double_free=0", &o); });
  EXPECT_EQ(err, "");
  EXPECT_EQ(o.harden, 1);
  EXPECT_EQ(o.double_free, 0);
  err = CaptureStderr([&] { internal::ParseOptions("harden=2", &o); });
  EXPECT_EQ(err, OptBad("harden", kBoolForm));
  EXPECT_EQ(o.harden, 1);
}

TEST(AssayOptionsGrammar, LongKeysAreQuotedWhole) {
  const std::string key(3000, 'k');
  CheckOpt({(key + "=1,stats_at_exit=1").c_str(), 10, 1, 4 * kMiB, 1, OptUnknown(key)});
}

// =============================== MALLOC_PROF ===============================

const char kProfKeys[] =
    "rate interval period prefix final peak leak depth seed young signal stack http http_remote "
    "mode";

std::string ProfUnknown(const std::string& key) {
  return "assay: MALLOC_PROF: unknown key '" + key + "' (keys: " + kProfKeys +
         "); profiling stays off\n";
}
std::string ProfBad(const std::string& key, const std::string& form) {
  return "assay: MALLOC_PROF: bad value for '" + key + "' (expected " + form +
         "); profiling stays off\n";
}

void ExpectSameProf(const ProfConfig& got, const ProfConfig& want, const char* text) {
  EXPECT_EQ(got.enabled, want.enabled) << text;
  EXPECT_EQ(got.rate, want.rate) << text;
  EXPECT_EQ(got.interval, want.interval) << text;
  EXPECT_EQ(got.period_s, want.period_s) << text;
  EXPECT_STREQ(got.prefix, want.prefix) << text;
  EXPECT_EQ(got.final_dump, want.final_dump) << text;
  EXPECT_EQ(got.peak, want.peak) << text;
  EXPECT_EQ(got.leak, want.leak) << text;
  EXPECT_EQ(got.depth, want.depth) << text;
  EXPECT_EQ(got.seed, want.seed) << text;
  EXPECT_EQ(got.young, want.young) << text;
  EXPECT_EQ(got.signal, want.signal) << text;
  EXPECT_EQ(got.stack_method, want.stack_method) << text;
  EXPECT_EQ(got.file_mode, want.file_mode) << text;
  EXPECT_STREQ(got.http, want.http) << text;
  EXPECT_EQ(got.http_remote, want.http_remote) << text;
}

// Parses `text` into a config that starts out dirty (ParseProfConfig must
// reset it), returning the result, *err the captured stderr.
bool ParseProf(const char* text, ProfConfig* out, std::string* err) {
  memset(static_cast<void*>(out), 0x5a, sizeof(*out));
  out->prefix[sizeof(out->prefix) - 1] = '\0';
  bool ok = false;
  *err = CaptureStderr([&] { ok = profiler::ParseProfConfig(text, out); });
  return ok;
}

// A good MALLOC_PROF value: no stderr, enabled, `edit` applied to the defaults.
void CheckProfGood(const char* text, const std::function<void(ProfConfig&)>& edit) {
  ProfConfig got;
  std::string err;
  EXPECT_TRUE(ParseProf(text, &got, &err)) << text;
  EXPECT_EQ(err, "") << text;
  ProfConfig want;
  want.enabled = true;
  edit(want);
  ExpectSameProf(got, want, text);
}

// A bad MALLOC_PROF value: false, exactly `line` on stderr, profiling off.
void CheckProfBad(const char* text, const std::string& line) {
  ProfConfig got;
  std::string err;
  EXPECT_FALSE(ParseProf(text, &got, &err)) << text;
  EXPECT_EQ(err, line) << text;
  EXPECT_FALSE(got.enabled) << text;
}

TEST(MallocProfGrammar, OffForms) {
  for (const char* text : {static_cast<const char*>(nullptr), "", "0"}) {
    ProfConfig got;
    std::string err;
    EXPECT_TRUE(ParseProf(text, &got, &err));
    EXPECT_EQ(err, "");
    ExpectSameProf(got, ProfConfig{}, text != nullptr ? text : "(null)");
  }
}

TEST(MallocProfGrammar, OneMeansOnWithTheDocumentedDefaults) {
  ProfConfig got;
  std::string err;
  ASSERT_TRUE(ParseProf("1", &got, &err));
  EXPECT_EQ(err, "");
  EXPECT_TRUE(got.enabled);
  EXPECT_EQ(got.rate, 512u * 1024);
  EXPECT_EQ(got.interval, 0u);
  EXPECT_EQ(got.period_s, 0u);
  EXPECT_STREQ(got.prefix, "./assay");
  EXPECT_TRUE(got.final_dump);
  EXPECT_FALSE(got.peak);
  EXPECT_FALSE(got.leak);
  EXPECT_EQ(got.depth, 64);
  EXPECT_EQ(got.seed, 0u);   // 0: from the clock, later
  EXPECT_EQ(got.young, 0u);  // 0: 128 * rate, later
  EXPECT_EQ(got.signal, 0);
  EXPECT_EQ(got.stack_method, 0);
}

TEST(MallocProfGrammar, AcceptedForms) {
  CheckProfGood("rate=64k", [](ProfConfig& c) { c.rate = 65536; });
  CheckProfGood("rate=1", [](ProfConfig& c) { c.rate = 1; });
  CheckProfGood("rate=1G", [](ProfConfig& c) { c.rate = uint64_t{1} << 30; });
  CheckProfGood("rate=1125899906842624", [](ProfConfig& c) { c.rate = uint64_t{1} << 50; });
  CheckProfGood("interval=0", [](ProfConfig& c) { c.interval = 0; });
  CheckProfGood("interval=1m", [](ProfConfig& c) { c.interval = 1 << 20; });
  CheckProfGood("period=60", [](ProfConfig& c) { c.period_s = 60; });
  CheckProfGood("period=1k", [](ProfConfig& c) { c.period_s = 1024; });
  CheckProfGood("period=1073741824", [](ProfConfig& c) { c.period_s = 1u << 30; });
  CheckProfGood("prefix=/tmp/prof/app", [](ProfConfig& c) { strcpy(c.prefix, "/tmp/prof/app"); });
  CheckProfGood("prefix=a=b", [](ProfConfig& c) { strcpy(c.prefix, "a=b"); });
  const std::string long_prefix = "prefix=" + std::string(511, 'p');
  CheckProfGood(long_prefix.c_str(), [](ProfConfig& c) {
    memset(c.prefix, 'p', 511);
    c.prefix[511] = '\0';
  });
  CheckProfGood("final=0", [](ProfConfig& c) { c.final_dump = false; });
  CheckProfGood("final=1", [](ProfConfig& c) { c.final_dump = true; });
  CheckProfGood("peak=1", [](ProfConfig& c) { c.peak = true; });
  CheckProfGood("peak=0", [](ProfConfig& c) { c.peak = false; });
  CheckProfGood("leak=1", [](ProfConfig& c) { c.leak = true; });
  CheckProfGood("depth=1", [](ProfConfig& c) { c.depth = 1; });
  CheckProfGood("depth=256", [](ProfConfig& c) { c.depth = 256; });
  CheckProfGood("seed=12345", [](ProfConfig& c) { c.seed = 12345; });
  CheckProfGood("seed=0", [](ProfConfig& c) { c.seed = 0; });
  CheckProfGood("young=1m", [](ProfConfig& c) { c.young = 1 << 20; });
  CheckProfGood("young=1", [](ProfConfig& c) { c.young = 1; });
  CheckProfGood("signal=USR1", [](ProfConfig& c) { c.signal = SIGUSR1; });
  CheckProfGood("signal=SIGUSR2", [](ProfConfig& c) { c.signal = SIGUSR2; });
  CheckProfGood("signal=HUP", [](ProfConfig& c) { c.signal = SIGHUP; });
  CheckProfGood("signal=PROF", [](ProfConfig& c) { c.signal = SIGPROF; });
  CheckProfGood("signal=URG", [](ProfConfig& c) { c.signal = SIGURG; });
  CheckProfGood("signal=SIGWINCH", [](ProfConfig& c) { c.signal = SIGWINCH; });
  CheckProfGood("signal=12", [](ProfConfig& c) { c.signal = 12; });
  CheckProfGood("signal=SIG12", [](ProfConfig& c) { c.signal = 12; });
  CheckProfGood("signal=1", [](ProfConfig& c) { c.signal = 1; });
  CheckProfGood("signal=64", [](ProfConfig& c) { c.signal = 64; });
  CheckProfGood("stack=unwind", [](ProfConfig& c) { c.stack_method = 0; });
  CheckProfGood("stack=fp", [](ProfConfig& c) { c.stack_method = 1; });
  CheckProfGood("mode=0644", [](ProfConfig& c) { c.file_mode = 0644; });
  CheckProfGood("mode=640", [](ProfConfig& c) { c.file_mode = 0640; });
  CheckProfGood("mode=0600", [](ProfConfig& c) { c.file_mode = 0600; });
  CheckProfGood("mode=0777", [](ProfConfig& c) { c.file_mode = 0777; });
  CheckProfGood("mode=1", [](ProfConfig& c) { c.file_mode = 1; });
  CheckProfGood("http=127.0.0.1:6060", [](ProfConfig& c) { strcpy(c.http, "127.0.0.1:6060"); });
  CheckProfGood("http=unix:/run/x.sock,http_remote=1", [](ProfConfig& c) {
    strcpy(c.http, "unix:/run/x.sock");
    c.http_remote = true;
  });
  CheckProfGood(
      "rate=64k,interval=1m,period=60,prefix=/tmp/x,final=0,peak=1,leak=1,depth=16,"
      "seed=7,young=2m,signal=USR2,stack=fp",
      [](ProfConfig& c) {
        c.rate = 65536;
        c.interval = 1 << 20;
        c.period_s = 60;
        strcpy(c.prefix, "/tmp/x");
        c.final_dump = false;
        c.peak = true;
        c.leak = true;
        c.depth = 16;
        c.seed = 7;
        c.young = 2 << 20;
        c.signal = SIGUSR2;
        c.stack_method = 1;
      });
  // Empty items are skipped; a repeated key takes its last value.
  CheckProfGood(",rate=4k,,depth=8,", [](ProfConfig& c) {
    c.rate = 4096;
    c.depth = 8;
  });
  CheckProfGood("depth=8,depth=9", [](ProfConfig& c) { c.depth = 9; });
}

const char kRateForm[] = "bytes >= 1, k/m/g suffix";
const char kSignalForm[] = "a signal name such as USR2, or its number";

TEST(MallocProfGrammar, BadForms) {
  CheckProfBad("colour=1", ProfUnknown("colour"));
  CheckProfBad("colour", ProfUnknown("colour"));
  CheckProfBad("RATE=4k", ProfUnknown("RATE"));
  CheckProfBad("=4k", ProfUnknown(""));
  CheckProfBad("1,rate=4k", ProfUnknown("1"));
  CheckProfBad("0,rate=4k", ProfUnknown("0"));
  CheckProfBad("rate", ProfBad("rate", kRateForm));
  const char kModeForm[] = "an octal file mode, 0001 to 0777 (default 0600)";
  CheckProfBad("mode=0", ProfBad("mode", kModeForm));
  CheckProfBad("mode=0000", ProfBad("mode", kModeForm));
  CheckProfBad("mode=0800", ProfBad("mode", kModeForm));
  CheckProfBad("mode=4755", ProfBad("mode", kModeForm));
  CheckProfBad("mode=01777", ProfBad("mode", kModeForm));
  CheckProfBad("mode=00644", ProfBad("mode", kModeForm));
  CheckProfBad("mode=rw", ProfBad("mode", kModeForm));
  CheckProfBad("mode=", ProfBad("mode", kModeForm));
  CheckProfBad("rate=", ProfBad("rate", kRateForm));
  CheckProfBad("rate=0", ProfBad("rate", kRateForm));
  CheckProfBad("rate=-1", ProfBad("rate", kRateForm));
  CheckProfBad("rate=4kb", ProfBad("rate", kRateForm));
  CheckProfBad("rate= 4k", ProfBad("rate", kRateForm));
  CheckProfBad("rate=4k ", ProfBad("rate", kRateForm));
  CheckProfBad("rate=1.5m", ProfBad("rate", kRateForm));
  CheckProfBad("rate=1125899906842625", ProfBad("rate", kRateForm));
  CheckProfBad("rate=2097152g", ProfBad("rate", kRateForm));
  CheckProfBad("interval=-1", ProfBad("interval", "bytes, k/m/g suffix"));
  CheckProfBad("interval", ProfBad("interval", "bytes, k/m/g suffix"));
  CheckProfBad("period=1073741825", ProfBad("period", "seconds"));
  CheckProfBad("period=soon", ProfBad("period", "seconds"));
  CheckProfBad("prefix=", ProfBad("prefix", "a file path prefix, under 512 bytes"));
  CheckProfBad("prefix", ProfBad("prefix", "a file path prefix, under 512 bytes"));
  const std::string too_long = "prefix=" + std::string(512, 'p');
  CheckProfBad(too_long.c_str(), ProfBad("prefix", "a file path prefix, under 512 bytes"));
  CheckProfBad("final=2", ProfBad("final", "0 or 1"));
  CheckProfBad("final", ProfBad("final", "0 or 1"));
  CheckProfBad("peak=yes", ProfBad("peak", "0 or 1"));
  CheckProfBad("leak=-1", ProfBad("leak", "0 or 1"));
  CheckProfBad("depth=0", ProfBad("depth", "frames, 1 to 256"));
  CheckProfBad("depth=257", ProfBad("depth", "frames, 1 to 256"));
  CheckProfBad("depth=1k", ProfBad("depth", "frames, 1 to 256"));
  CheckProfBad("seed=-1", ProfBad("seed", "a non-negative integer"));
  CheckProfBad("seed=x", ProfBad("seed", "a non-negative integer"));
  CheckProfBad("young=0", ProfBad("young", kRateForm));
  CheckProfBad("signal", ProfBad("signal", kSignalForm));
  CheckProfBad("signal=", ProfBad("signal", kSignalForm));
  CheckProfBad("signal=usr1", ProfBad("signal", kSignalForm));
  CheckProfBad("signal=SIG", ProfBad("signal", kSignalForm));
  CheckProfBad("signal=KILL", ProfBad("signal", kSignalForm));
  CheckProfBad("signal=0", ProfBad("signal", kSignalForm));
  CheckProfBad("signal=65", ProfBad("signal", kSignalForm));
  CheckProfBad("signal=1k", ProfBad("signal", kSignalForm));
  for (int sig : {SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGFPE, SIGILL}) {
    const std::string text = "signal=" + std::to_string(sig);
    CheckProfBad(text.c_str(), ProfBad("signal", kSignalForm));
  }
  CheckProfBad("stack=FP", ProfBad("stack", "unwind or fp"));
  CheckProfBad("stack=", ProfBad("stack", "unwind or fp"));
  CheckProfBad("stack", ProfBad("stack", "unwind or fp"));
  CheckProfBad("stack=unwindx", ProfBad("stack", "unwind or fp"));
  const char kHttpForm[] = "IP:PORT, [IPv6]:PORT or unix:/path, under 128 bytes";
  CheckProfBad("http=", ProfBad("http", kHttpForm));
  CheckProfBad(("http=" + std::string(128, 'a')).c_str(), ProfBad("http", kHttpForm));
  CheckProfBad("http_remote=2", ProfBad("http_remote", "0 or 1"));
}

TEST(MallocProfGrammar, TheFirstBadItemStopsEverything) {
  // One line only: parsing stops at the first bad item, and the program runs
  // unprofiled (documented), whatever follows.
  CheckProfBad("rate=4k,depth=0,colour=1,final=2", ProfBad("depth", "frames, 1 to 256"));
  CheckProfBad("colour=1,depth=0", ProfUnknown("colour"));
  const std::string key(3000, 'k');
  CheckProfBad((key + "=1").c_str(), ProfUnknown(key));
}

// =============================== ASSAY_DEBUG ===============================

const char kDebugKnown[] =
    "known: redzone, guard[=N], freecheck, quarantine=BYTES, audit[=DEPTH], leaks[=error], "
    "leak_profile=PATH";

std::string DebugBad(const std::string& item, const std::string& form) {
  return "assay: ASSAY_DEBUG: bad option '" + item + "' (" + form + "); ignored\n";
}
std::string DebugUnknown(const std::string& item) { return DebugBad(item, kDebugKnown); }

void ExpectSameDebug(const Config& got, const Config& want, const char* text) {
  EXPECT_EQ(got.redzone, want.redzone) << text;
  EXPECT_EQ(got.guard, want.guard) << text;
  EXPECT_EQ(got.guard_big, want.guard_big) << text;
  EXPECT_EQ(got.guard_every, want.guard_every) << text;
  EXPECT_EQ(got.freecheck, want.freecheck) << text;
  EXPECT_EQ(got.quarantine_bytes, want.quarantine_bytes) << text;
  EXPECT_EQ(got.audit, want.audit) << text;
  EXPECT_EQ(got.audit_depth, want.audit_depth) << text;
  EXPECT_EQ(got.leaks, want.leaks) << text;
  EXPECT_EQ(got.leaks_error, want.leaks_error) << text;
  EXPECT_STREQ(got.leak_profile, want.leak_profile) << text;
}

// Parses `text` onto the defaults; stderr must be exactly `err`, and the
// result the defaults with `edit` applied.
void CheckDebug(const char* text, const std::string& err,
                const std::function<void(Config&)>& edit) {
  Config got;
  const std::string out = CaptureStderr([&] { internal::debug::ParseConfig(text, &got); });
  const char* shown = text != nullptr ? text : "(null)";
  EXPECT_EQ(out, err) << shown;
  Config want;
  edit(want);
  ExpectSameDebug(got, want, shown);
}

const auto kNoChange = [](Config&) {};

TEST(AssayDebugGrammar, Defaults) {
  const Config c;
  EXPECT_FALSE(c.redzone);
  EXPECT_FALSE(c.guard);
  EXPECT_FALSE(c.guard_big);
  EXPECT_EQ(c.guard_every, 0u);
  EXPECT_FALSE(c.freecheck);
  EXPECT_EQ(c.quarantine_bytes, 16u << 20);
  EXPECT_FALSE(c.audit);
  EXPECT_EQ(c.audit_depth, 32);
  EXPECT_FALSE(c.leaks);
  EXPECT_FALSE(c.leaks_error);
  EXPECT_STREQ(c.leak_profile, "");
  CheckDebug(nullptr, "", kNoChange);
  CheckDebug("", "", kNoChange);
  CheckDebug(",,", "", kNoChange);
}

TEST(AssayDebugGrammar, AcceptedForms) {
  CheckDebug("redzone", "", [](Config& c) { c.redzone = true; });
  CheckDebug("guard", "", [](Config& c) {
    c.guard = true;
    c.guard_big = true;
  });
  CheckDebug("guard=100", "", [](Config& c) {
    c.guard = true;
    c.guard_every = 100;
  });
  CheckDebug("guard=1", "", [](Config& c) {
    c.guard = true;
    c.guard_every = 1;
  });
  CheckDebug("guard=1k", "", [](Config& c) {
    c.guard = true;
    c.guard_every = 1024;
  });
  CheckDebug("guard,guard=10", "", [](Config& c) {
    c.guard = true;
    c.guard_big = true;
    c.guard_every = 10;
  });
  CheckDebug("freecheck", "", [](Config& c) { c.freecheck = true; });
  CheckDebug("quarantine=1m", "", [](Config& c) { c.quarantine_bytes = 1 << 20; });
  CheckDebug("quarantine=0", "", [](Config& c) { c.quarantine_bytes = 0; });
  CheckDebug("quarantine=8G", "", [](Config& c) { c.quarantine_bytes = uint64_t{8} << 30; });
  CheckDebug("quarantine=4096", "", [](Config& c) { c.quarantine_bytes = 4096; });
  CheckDebug("audit", "", [](Config& c) { c.audit = true; });
  CheckDebug("audit=8", "", [](Config& c) {
    c.audit = true;
    c.audit_depth = 8;
  });
  CheckDebug("audit=1", "", [](Config& c) {
    c.audit = true;
    c.audit_depth = 1;
  });
  CheckDebug("audit=256", "", [](Config& c) {
    c.audit = true;
    c.audit_depth = 256;
  });
  // The parser does not derive: `leaks` implies audit in Init, not here.
  CheckDebug("leaks", "", [](Config& c) { c.leaks = true; });
  CheckDebug("leaks=error", "", [](Config& c) {
    c.leaks = true;
    c.leaks_error = true;
  });
  CheckDebug("leaks=error,leaks", "", [](Config& c) { c.leaks = true; });
  CheckDebug("leak_profile=/tmp/x.leak.pb.gz", "",
             [](Config& c) { strcpy(c.leak_profile, "/tmp/x.leak.pb.gz"); });
  CheckDebug("leak_profile=a=b", "", [](Config& c) { strcpy(c.leak_profile, "a=b"); });
  CheckDebug("leak_profile=x,leak_profile=", "", kNoChange);
  const std::string long_path = "leak_profile=" + std::string(255, 'l');
  CheckDebug(long_path.c_str(), "", [](Config& c) {
    memset(c.leak_profile, 'l', 255);
    c.leak_profile[255] = '\0';
  });
  CheckDebug("audit,redzone,freecheck,leaks", "", [](Config& c) {
    c.audit = true;
    c.redzone = true;
    c.freecheck = true;
    c.leaks = true;
  });
  CheckDebug(",redzone,,quarantine=1k,", "", [](Config& c) {
    c.redzone = true;
    c.quarantine_bytes = 1024;
  });
}

TEST(AssayDebugGrammar, BadForms) {
  // Unknown words, and words in a form they do not take, get the list.
  CheckDebug("bogus", DebugUnknown("bogus"), kNoChange);
  CheckDebug("REDZONE", DebugUnknown("REDZONE"), kNoChange);
  CheckDebug("redzone=1", DebugUnknown("redzone=1"), kNoChange);
  CheckDebug("redzone=", DebugUnknown("redzone="), kNoChange);
  CheckDebug("freecheck=yes", DebugUnknown("freecheck=yes"), kNoChange);
  CheckDebug("leak_profile", DebugUnknown("leak_profile"), kNoChange);
  CheckDebug("=x", DebugUnknown("=x"), kNoChange);
  // The whole item is quoted, cut at 64 bytes.
  const std::string long_key(100, 'z');
  CheckDebug(long_key.c_str(), DebugUnknown(std::string(64, 'z')), kNoChange);
  const std::string long_path = "leak_profile=" + std::string(256, 'l');
  CheckDebug(long_path.c_str(), DebugBad(long_path.substr(0, 64), "a path under 256 bytes"),
             kNoChange);
  const char kGuardForm[] = "guard or guard=N, N >= 1";
  CheckDebug("guard=0", DebugBad("guard=0", kGuardForm), kNoChange);
  CheckDebug("guard=", DebugBad("guard=", kGuardForm), kNoChange);
  CheckDebug("guard=-5", DebugBad("guard=-5", kGuardForm), kNoChange);
  CheckDebug("guard=lots", DebugBad("guard=lots", kGuardForm), kNoChange);
  CheckDebug("guard=10x", DebugBad("guard=10x", kGuardForm), kNoChange);
  const char kQuarantineForm[] = "quarantine=BYTES, k/m/g suffixes";
  CheckDebug("quarantine", DebugBad("quarantine", kQuarantineForm), kNoChange);
  CheckDebug("quarantine=", DebugBad("quarantine=", kQuarantineForm), kNoChange);
  CheckDebug("quarantine=-1", DebugBad("quarantine=-1", kQuarantineForm), kNoChange);
  CheckDebug("quarantine=1mb", DebugBad("quarantine=1mb", kQuarantineForm), kNoChange);
  const char kAuditForm[] = "audit or audit=DEPTH, 1..256 frames";
  CheckDebug("audit=0", DebugBad("audit=0", kAuditForm), kNoChange);
  CheckDebug("audit=257", DebugBad("audit=257", kAuditForm), kNoChange);
  CheckDebug("audit=", DebugBad("audit=", kAuditForm), kNoChange);
  CheckDebug("audit=deep", DebugBad("audit=deep", kAuditForm), kNoChange);
  const char kLeaksForm[] = "leaks or leaks=error";
  CheckDebug("leaks=yes", DebugBad("leaks=yes", kLeaksForm), kNoChange);
  CheckDebug("leaks=", DebugBad("leaks=", kLeaksForm), kNoChange);
  CheckDebug("leaks=ERROR", DebugBad("leaks=ERROR", kLeaksForm), kNoChange);
}

TEST(AssayDebugGrammar, OneLinePerBadItemAndTheRestApply) {
  CheckDebug("bogus,redzone,guard=0,freecheck,audit=999,quarantine=2m",
             DebugUnknown("bogus") + DebugBad("guard=0", "guard or guard=N, N >= 1") +
                 DebugBad("audit=999", "audit or audit=DEPTH, 1..256 frames"),
             [](Config& c) {
               c.redzone = true;
               c.freecheck = true;
               c.quarantine_bytes = 2 << 20;
             });
  // A bad value leaves what an earlier good one set.
  CheckDebug("audit=8,audit=0", DebugBad("audit=0", "audit or audit=DEPTH, 1..256 frames"),
             [](Config& c) {
               c.audit = true;
               c.audit_depth = 8;
             });
}

}  // namespace
}  // namespace assay
