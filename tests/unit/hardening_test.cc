// Hardened free lists and double-free detection: a block freed twice in a
// row is reported and the process aborts (default options); with
// ASSAY_OPTIONS=harden=1 a free block whose link was overwritten (a heap
// overflow or a write after free) is reported when the list reaches it,
// and the address written there is never handed out. Children that need
// ASSAY_OPTIONS from their first allocation are this binary re-executed
// with a DISABLED_ test selected.
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"

namespace {

constexpr char kDoubleFree[] = "assay: double free of 0x[0-9a-f]+ \\(a block of class size 64 B";

void* Launder(void* p) {
  asm volatile("" : "+r"(p));
  return p;
}

char g_target[64];  // what an attacker wants malloc to return

class DoubleFreeDeathTest : public testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(DoubleFreeDeathTest, TwiceInARow) {
  EXPECT_DEATH(
      {
        void* p = malloc(64);
        free(p);
        free(Launder(p));
      },
      kDoubleFree);
}

TEST_F(DoubleFreeDeathTest, AfterTheListWasFull) {
  // The second free finds its list at the bound: still reported, not
  // pushed into the central list.
  EXPECT_DEATH(
      {
        void* blocks[4096];
        for (auto& b : blocks) b = malloc(64);
        for (auto& b : blocks) free(b);
        free(Launder(blocks[4095]));
      },
      "assay: double free of 0x");
}

// Runs this binary with one DISABLED_ test and ASSAY_OPTIONS=options;
// returns its wait status and stderr.
int RunChild(const char* test, const char* options, std::string* err) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    if (freopen("/dev/null", "w", stdout) == nullptr) _exit(126);
    setenv("ASSAY_OPTIONS", options, 1);
    const std::string filter = std::string("--gtest_filter=") + test;
    execl("/proc/self/exe", "self", filter.c_str(), "--gtest_also_run_disabled_tests", nullptr);
    _exit(127);
  }
  close(fds[1]);
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof(buf))) > 0;)
    err->append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

// ---- Children (run only through RunChild) ----

// A heap overflow (or a write after free) puts &g_target into a free block's
// link; then malloc is called a few times. Prints
// "handed out the target" if malloc ever returns it.
TEST(HardenChild, DISABLED_OverwrittenLink) {
  char* a = static_cast<char*>(malloc(64));
  char* b = static_cast<char*>(malloc(64));
  // b heads the list (below its bound: b was popped from it just now), its
  // link names the block that was under it.
  free(b);
  // The overflow of a into b when they are neighbours (fresh blocks are
  // carved in address order), else the same bytes written through b.
  char* link = b == a + 64 ? a + 64 : b;
  void* target = g_target;
  memcpy(link, &target, sizeof(target));
  for (int i = 0; i < 4; ++i) {
    // Laundered: malloc's declaration says its result aliases nothing.
    void* p = Launder(malloc(64));
    if (p == Launder(g_target)) {
      fprintf(stderr, "handed out the target\n");
      _exit(3);
    }
  }
  fprintf(stderr, "no report\n");
  _exit(4);
}

TEST(HardenChild, DISABLED_DoubleFree) {
  void* p = malloc(64);
  free(p);
  free(Launder(p));
  _exit(4);
}

// double_free=0: the second free is pushed again, as before the check.
TEST(HardenChild, DISABLED_DoubleFreeUnchecked) {
  void* p = malloc(64);
  free(p);
  free(Launder(p));
  void* x = Launder(malloc(64));
  void* y = Launder(malloc(64));
  fprintf(stderr, "unchecked: %s\n", x == p && y == p ? "same block twice" : "other");
  _exit(0);
}

// Ordinary use with harden=1: many sizes, lists filled past their bounds
// and drained, blocks crossing threads through the central lists.
TEST(HardenChild, DISABLED_Churn) {
  static void* blocks[20000];
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 20000; ++i) {
      blocks[i] = malloc(static_cast<size_t>(8 + (i * 37) % 3000));
      memset(blocks[i], i, 8);
    }
    for (int i = 0; i < 20000; i += 2) free(blocks[i]);
    for (int i = 1; i < 20000; i += 2) free(blocks[i]);
  }
  fprintf(stderr, "churn done\n");
  _exit(0);
}

// ---- Parents ----

TEST(Harden, OverwrittenLinkIsReportedAndTheTargetNeverReturned) {
  std::string err;
  const int status = RunChild("HardenChild.DISABLED_OverwrittenLink", "harden=1", &err);
  EXPECT_EQ(err.find("handed out the target"), std::string::npos) << err;
  EXPECT_EQ(err.find("no report"), std::string::npos) << err;
  ASSERT_TRUE(WIFSIGNALED(status)) << "status " << status << ": " << err;
  EXPECT_EQ(WTERMSIG(status), SIGABRT);
  EXPECT_NE(err.find("assay: corrupted free list: the link in free block 0x"), std::string::npos)
      << err;
}

TEST(Harden, WithoutHardeningTheTargetIsHandedOut) {
  // The control: the same corruption on plain lists reaches malloc's
  // result, so the test above would see it if safe-linking were not on.
  std::string err;
  const int status = RunChild("HardenChild.DISABLED_OverwrittenLink", "harden=0", &err);
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status << ": " << err;
  EXPECT_EQ(WEXITSTATUS(status), 3) << err;
  EXPECT_NE(err.find("handed out the target"), std::string::npos) << err;
}

TEST(Harden, DoubleFreeIsReported) {
  std::string err;
  const int status = RunChild("HardenChild.DISABLED_DoubleFree", "harden=1", &err);
  ASSERT_TRUE(WIFSIGNALED(status)) << "status " << status << ": " << err;
  EXPECT_EQ(WTERMSIG(status), SIGABRT);
  EXPECT_NE(err.find("assay: double free of 0x"), std::string::npos) << err;
}

TEST(Harden, DoubleFreeCheckCanBeTurnedOff) {
  std::string err;
  const int status = RunChild("HardenChild.DISABLED_DoubleFreeUnchecked", "double_free=0", &err);
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status << ": " << err;
  EXPECT_EQ(WEXITSTATUS(status), 0) << err;
  EXPECT_EQ(err.find("double free"), std::string::npos) << err;
  EXPECT_NE(err.find("unchecked: same block twice"), std::string::npos) << err;
}

TEST(Harden, OrdinaryUseRunsClean) {
  std::string err;
  const int status = RunChild("HardenChild.DISABLED_Churn", "harden=1", &err);
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status << ": " << err;
  EXPECT_EQ(WEXITSTATUS(status), 0) << err;
  EXPECT_NE(err.find("churn done"), std::string::npos) << err;
}

}  // namespace
