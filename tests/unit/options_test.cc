// ASSAY_OPTIONS parsing: sizes with suffixes, and one clear stderr line per
// bad key or value with the default kept (checked in a forked child, since
// the options are process-wide).
#include "base/options.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

namespace assay::internal {
namespace {

TEST(ParseSize, AcceptsNumbersAndSuffixes) {
  int64_t v = 0;
  ASSERT_TRUE(ParseSize("0", 1, &v));
  EXPECT_EQ(v, 0);
  ASSERT_TRUE(ParseSize("1500", 4, &v));
  EXPECT_EQ(v, 1500);
  ASSERT_TRUE(ParseSize("4k", 2, &v));
  EXPECT_EQ(v, 4096);
  ASSERT_TRUE(ParseSize("3M", 2, &v));
  EXPECT_EQ(v, 3 << 20);
  ASSERT_TRUE(ParseSize("2g", 2, &v));
  EXPECT_EQ(v, int64_t{2} << 30);
  ASSERT_TRUE(ParseSize("-1", 2, &v));
  EXPECT_EQ(v, -1);
}

TEST(ParseSize, RejectsGarbage) {
  int64_t v = 0;
  for (const char* bad : {"", "k", "-", "12x", "1kk", "1.5m", "abc", "99999999999999999999"}) {
    EXPECT_FALSE(ParseSize(bad, strlen(bad), &v)) << bad;
  }
}

// Parses `text` in a child and returns what it wrote to stderr, plus the
// resulting options through *out.
std::string ParseInChild(const char* text, Options* out) {
  int err_pipe[2];
  int val_pipe[2];
  EXPECT_EQ(pipe(err_pipe), 0);
  EXPECT_EQ(pipe(val_pipe), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(err_pipe[1], 2);
    InitOptions(text);
    const Options& o = GetOptions();
    (void)!write(val_pipe[1], &o, sizeof(o));
    _exit(0);
  }
  close(err_pipe[1]);
  close(val_pipe[1]);
  std::string err;
  char buf[512];
  for (ssize_t n; (n = read(err_pipe[0], buf, sizeof(buf))) > 0;) err.append(buf, n);
  EXPECT_EQ(read(val_pipe[0], out, sizeof(*out)), static_cast<ssize_t>(sizeof(*out)));
  close(err_pipe[0]);
  close(val_pipe[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return err;
}

TEST(InitOptions, GoodValuesApply) {
  Options o;
  const std::string err =
      ParseInChild("decay_ms=250,background_thread=0,thread_cache_bytes=1m", &o);
  EXPECT_EQ(err, "");
  EXPECT_EQ(o.decay_ms, 250);
  EXPECT_EQ(o.background_thread, 0);
  EXPECT_EQ(o.thread_cache_bytes, 1 << 20);
}

TEST(InitOptions, BadValuesNameTheKeyAndKeepDefaults) {
  Options o;
  const std::string err =
      ParseInChild("decay_ms=soon,colour=blue,background_thread=7,thread_cache_bytes=2k", &o);
  EXPECT_NE(err.find("assay: ASSAY_OPTIONS: bad value for 'decay_ms'"), std::string::npos) << err;
  EXPECT_NE(err.find("unknown key 'colour'"), std::string::npos) << err;
  EXPECT_NE(err.find("bad value for 'background_thread' (expected 0 or 1)"), std::string::npos)
      << err;
  // One line per problem, and the good key still applies.
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 3) << err;
  const Options defaults;
  EXPECT_EQ(o.decay_ms, defaults.decay_ms);
  EXPECT_EQ(o.background_thread, defaults.background_thread);
  EXPECT_EQ(o.thread_cache_bytes, 2048);
}

}  // namespace
}  // namespace assay::internal
