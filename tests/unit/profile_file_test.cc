// The profile-file writer (pprof/profile_file.h): exact modes whatever the
// umask, unpredictable temporary names, planted names skipped and never
// followed, atomic replacement, and no temporary file left after a failure.
#include "pprof/profile_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

using assay::pprof::CreateTempFileBeside;
using assay::pprof::kProfileFileMode;
using assay::pprof::SetRandomSourceForTesting;
using assay::pprof::WriteFileReplacing;

constexpr char kSymbols[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

class ProfileFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") +
                       "/assay-profile-file.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr) << strerror(errno);
    dir_ = tmpl;
    // Traversable by the unprivileged user of the read-only directory test.
    ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);
    old_umask_ = umask(022);
  }
  void TearDown() override {
    umask(old_umask_);
    SetRandomSourceForTesting(nullptr);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  // Names in `dir` (default: the test's directory), sorted.
  std::vector<std::string> List(const std::string& dir = "") const {
    std::vector<std::string> names;
    DIR* d = opendir(dir.empty() ? dir_.c_str() : dir.c_str());
    if (d == nullptr) return names;
    while (const dirent* e = readdir(d)) {
      if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) names.push_back(e->d_name);
    }
    closedir(d);
    std::sort(names.begin(), names.end());
    return names;
  }

  static std::string Read(const std::string& path) {
    std::string out;
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return "<cannot open: " + std::string(strerror(errno)) + ">";
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
    close(fd);
    return out;
  }

  static void Put(const std::string& path, const std::string& bytes) {
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
    ASSERT_EQ(write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    close(fd);
  }

  static mode_t ModeOf(const std::string& path) {
    struct stat st {};
    if (lstat(path.c_str(), &st) != 0) return static_cast<mode_t>(-1);
    return st.st_mode;
  }

  std::string dir_;
  mode_t old_umask_ = 022;
};

TEST_F(ProfileFileTest, WritesTheBytesWithExactlyTheModeWhateverTheUmask) {
  struct Case {
    mode_t umask_value;
    mode_t mode;
  };
  const Case cases[] = {
      {0, kProfileFileMode}, {022, kProfileFileMode}, {077, 0644}, {0777, 0640}, {0, 0400}};
  int i = 0;
  for (const Case& c : cases) {
    umask(c.umask_value);
    const std::string path = Path("f" + std::to_string(i++));
    const std::string bytes = "profile bytes " + std::to_string(i) + std::string(10000, 'x');
    char err[256] = "";
    ASSERT_EQ(
        WriteFileReplacing(path.c_str(), bytes.data(), bytes.size(), c.mode, err, sizeof(err)), 0)
        << err;
    EXPECT_EQ(ModeOf(path), S_IFREG | c.mode) << "umask " << std::oct << c.umask_value;
    EXPECT_EQ(Read(path), bytes);
  }
  EXPECT_EQ(kProfileFileMode, 0600u);
  EXPECT_EQ(List().size(), std::size(cases)) << "temporary files left behind";
}

TEST_F(ProfileFileTest, TemporaryNamesAreUnpredictableAndDifferentEachTime) {
  const std::string final_path = Path("p.1234.0.heap.pb.gz");
  const std::string stem = final_path + ".tmp.";
  constexpr int kCalls = 500;
  std::set<std::string> names;
  std::vector<std::set<char>> seen(16);  // symbols seen at each position
  const std::string pid = std::to_string(getpid());
  for (int i = 0; i < kCalls; ++i) {
    std::string tmp;
    const int fd = CreateTempFileBeside(final_path.c_str(), kProfileFileMode, &tmp);
    ASSERT_GE(fd, 0) << strerror(-fd);
    close(fd);
    ASSERT_EQ(tmp.compare(0, stem.size(), stem), 0) << tmp << " is not beside " << final_path;
    const std::string suffix = tmp.substr(stem.size());
    ASSERT_EQ(suffix.size(), 16u) << tmp;
    ASSERT_EQ(suffix.find_first_not_of(kSymbols), std::string::npos) << tmp;
    EXPECT_NE(suffix, pid);
    for (size_t k = 0; k < 16; ++k) seen[k].insert(suffix[k]);
    EXPECT_EQ(ModeOf(tmp), S_IFREG | 0600) << tmp;
    EXPECT_TRUE(names.insert(tmp).second) << "name drawn twice: " << tmp;
  }
  // Each position is drawn from all 64 symbols: 500 draws of a uniform
  // symbol leave on average 0.03 of them unseen; a counter, a pid or a
  // clock in the name would leave most positions nearly constant.
  for (size_t k = 0; k < 16; ++k) {
    EXPECT_GE(seen[k].size(), 56u) << "position " << k << " of the random part";
  }
  EXPECT_EQ(List().size(), static_cast<size_t>(kCalls));
}

// A fixed random source: the first `zeros` draws are all zero bits, the
// following ones count up, so the test knows the names the writer tries.
std::atomic<int> g_draws{0};
int g_zero_draws = 0;
int CountingSource(void* buf, size_t len) {
  const int n = g_draws.fetch_add(1);
  memset(buf, n < g_zero_draws ? 0 : n, len);
  return 0;
}
int FailingSource(void*, size_t) { return ENOSYS; }

TEST_F(ProfileFileTest, PlantedSymlinkAtTheTemporaryNameIsSkippedNotFollowed) {
  const std::string victim = Path("victim");
  Put(victim, "precious");
  const std::string final_path = Path("out.pb.gz");
  // All-zero bits give "AAAAAAAAAAAAAAAA": the attacker plants that name.
  const std::string planted = final_path + ".tmp.AAAAAAAAAAAAAAAA";
  ASSERT_EQ(symlink(victim.c_str(), planted.c_str()), 0);
  // And the final name itself.
  ASSERT_EQ(symlink(victim.c_str(), final_path.c_str()), 0);
  g_draws = 0;
  g_zero_draws = 1;
  SetRandomSourceForTesting(CountingSource);
  const std::string bytes(100000, 'n');
  char err[256] = "";
  ASSERT_EQ(WriteFileReplacing(final_path.c_str(), bytes.data(), bytes.size(), kProfileFileMode,
                               err, sizeof(err)),
            0)
      << err;
  EXPECT_EQ(g_draws.load(), 2) << "the planted name must be drawn again, once";
  EXPECT_EQ(Read(victim), "precious");
  EXPECT_EQ(ModeOf(victim), S_IFREG | 0644);
  EXPECT_TRUE(S_ISLNK(ModeOf(planted))) << "the planted symlink was replaced or removed";
  EXPECT_EQ(ModeOf(final_path), S_IFREG | 0600) << "the symlink at the final name is replaced";
  EXPECT_EQ(Read(final_path), bytes);
  EXPECT_EQ(List(),
            (std::vector<std::string>{"out.pb.gz", "out.pb.gz.tmp.AAAAAAAAAAAAAAAA", "victim"}));
}

TEST_F(ProfileFileTest, EveryNameTakenFailsWithEexistAndTouchesNothing) {
  const std::string victim = Path("victim");
  Put(victim, "precious");
  const std::string final_path = Path("out.pb.gz");
  ASSERT_EQ(symlink(victim.c_str(), (final_path + ".tmp.AAAAAAAAAAAAAAAA").c_str()), 0);
  g_draws = 0;
  g_zero_draws = 1 << 30;
  SetRandomSourceForTesting(CountingSource);
  char err[256] = "";
  EXPECT_EQ(WriteFileReplacing(final_path.c_str(), "x", 1, kProfileFileMode, err, sizeof(err)),
            EEXIST);
  EXPECT_GT(g_draws.load(), 1) << "a taken name is drawn again before giving up";
  EXPECT_NE(strstr(err, final_path.c_str()), nullptr) << err;
  EXPECT_EQ(Read(victim), "precious");
  EXPECT_EQ(List().size(), 2u);
}

TEST_F(ProfileFileTest, WithoutKernelRandomnessNamesStillDiffer) {
  SetRandomSourceForTesting(FailingSource);
  const std::string final_path = Path("out");
  std::set<std::string> names;
  for (int i = 0; i < 100; ++i) {
    std::string tmp;
    const int fd = CreateTempFileBeside(final_path.c_str(), kProfileFileMode, &tmp);
    ASSERT_GE(fd, 0) << strerror(-fd);
    close(fd);
    EXPECT_TRUE(names.insert(tmp).second) << tmp;
  }
  char err[256] = "";
  EXPECT_EQ(WriteFileReplacing(final_path.c_str(), "abc", 3, kProfileFileMode, err, sizeof(err)), 0)
      << err;
  EXPECT_EQ(Read(final_path), "abc");
}

TEST_F(ProfileFileTest, LongNamesAreShortenedToFit) {
  const std::string final_path = Path(std::string(250, 'L'));
  std::string tmp;
  const int fd = CreateTempFileBeside(final_path.c_str(), kProfileFileMode, &tmp);
  ASSERT_GE(fd, 0) << strerror(-fd);
  close(fd);
  EXPECT_EQ(tmp.size() - dir_.size() - 1, static_cast<size_t>(NAME_MAX));
  unlink(tmp.c_str());
  char err[256] = "";
  EXPECT_EQ(WriteFileReplacing(final_path.c_str(), "abc", 3, kProfileFileMode, err, sizeof(err)), 0)
      << err;
  EXPECT_EQ(List(), std::vector<std::string>{std::string(250, 'L')});
}

TEST_F(ProfileFileTest, ReplacesAnExistingFileWithANewOneNeverWritingThroughIt) {
  const std::string final_path = Path("out");
  Put(final_path, "old contents");
  ASSERT_EQ(link(final_path.c_str(), Path("hardlink").c_str()), 0);
  struct stat before {};
  ASSERT_EQ(stat(final_path.c_str(), &before), 0);
  char err[256] = "";
  ASSERT_EQ(WriteFileReplacing(final_path.c_str(), "new", 3, kProfileFileMode, err, sizeof(err)), 0)
      << err;
  struct stat after {};
  ASSERT_EQ(stat(final_path.c_str(), &after), 0);
  EXPECT_NE(after.st_ino, before.st_ino) << "written in place instead of renamed";
  EXPECT_EQ(Read(final_path), "new");
  EXPECT_EQ(Read(Path("hardlink")), "old contents");
  EXPECT_EQ(List(), (std::vector<std::string>{"hardlink", "out"}));
}

TEST_F(ProfileFileTest, ReadersSeeTheOldFileOrTheWholeNewOne) {
  const std::string final_path = Path("out");
  constexpr size_t kSize = 256 * 1024;
  const std::string a(kSize, 'a'), b(kSize, 'b');
  Put(final_path, a);
  std::atomic<bool> done{false};
  std::atomic<int> reads{0}, torn{0}, missing{0};
  std::thread reader([&] {
    while (!done.load()) {
      const std::string got = Read(final_path);
      if (got.compare(0, 5, "<cann") == 0) {
        missing++;
      } else if (got != a && got != b) {
        torn++;
      }
      reads++;
    }
  });
  char err[256] = "";
  for (int i = 0; i < 300; ++i) {
    const std::string& bytes = i % 2 == 0 ? b : a;
    ASSERT_EQ(WriteFileReplacing(final_path.c_str(), bytes.data(), bytes.size(), kProfileFileMode,
                                 err, sizeof(err)),
              0)
        << err;
  }
  // Let the reader overlap at least a few writes' worth of reads.
  while (reads.load() < 20) std::this_thread::yield();
  done = true;
  reader.join();
  EXPECT_EQ(torn.load(), 0) << "of " << reads.load() << " reads";
  EXPECT_EQ(missing.load(), 0) << "of " << reads.load() << " reads";
  EXPECT_EQ(List(), std::vector<std::string>{"out"});
}

TEST_F(ProfileFileTest, MissingDirectoryFailsWithEnoentNamingThePath) {
  const std::string path = Path("no/such/dir/out");
  char err[256] = "";
  EXPECT_EQ(WriteFileReplacing(path.c_str(), "x", 1, kProfileFileMode, err, sizeof(err)), ENOENT);
  EXPECT_NE(strstr(err, path.c_str()), nullptr) << err;
  EXPECT_TRUE(List().empty());
}

// Runs fn in a child process (so rlimits and credentials stay there) and
// returns its exit status, or -1 if it did not exit normally.
template <typename Fn>
int InChild(Fn fn) {
  const pid_t pid = fork();
  if (pid == 0) _exit(fn());
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

TEST_F(ProfileFileTest, ReadOnlyDirectoryFailsAndLeavesNothing) {
  const std::string ro = Path("ro");
  ASSERT_EQ(mkdir(ro.c_str(), 0755), 0);
  Put(ro + "/out", "old");
  ASSERT_EQ(chmod(ro.c_str(), 0555), 0);
  const std::string path = ro + "/out";
  const int rc = InChild([&] {
    // root writes anywhere: drop to nobody first.
    if (geteuid() == 0 &&
        (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0))
      return 100;
    char err[256];
    return WriteFileReplacing(path.c_str(), "new", 3, kProfileFileMode, err, sizeof(err));
  });
  EXPECT_EQ(rc, EACCES);
  EXPECT_EQ(List(ro), std::vector<std::string>{"out"});
  EXPECT_EQ(Read(path), "old");
}

TEST_F(ProfileFileTest, WriteErrorPartWayRemovesTheTemporaryFile) {
  // Past RLIMIT_FSIZE write(2) fails with EFBIG (SIGXFSZ ignored): a disk
  // that fills up during the write.
  const std::string path = Path("out");
  Put(path, "old");
  const int rc = InChild([&] {
    signal(SIGXFSZ, SIG_IGN);
    const struct rlimit lim = {16384, 16384};
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0) return 100;
    const std::string bytes(1 << 20, 'z');
    char err[256];
    return WriteFileReplacing(path.c_str(), bytes.data(), bytes.size(), kProfileFileMode, err,
                              sizeof(err));
  });
  EXPECT_EQ(rc, EFBIG);
  EXPECT_EQ(List(), std::vector<std::string>{"out"});
  EXPECT_EQ(Read(path), "old");
}

TEST_F(ProfileFileTest, DirectoryTargetIsRefusedAndLeavesNothing) {
  // The final name is a non-empty directory: refused before any temporary
  // file exists (rename(2) would refuse it too).
  const std::string path = Path("out");
  ASSERT_EQ(mkdir(path.c_str(), 0755), 0);
  Put(path + "/inside", "x");
  char err[256] = "";
  const int rc = WriteFileReplacing(path.c_str(), "new", 3, kProfileFileMode, err, sizeof(err));
  EXPECT_EQ(rc, EINVAL) << err;
  EXPECT_NE(strstr(err, path.c_str()), nullptr) << err;
  EXPECT_EQ(List(), std::vector<std::string>{"out"});
  EXPECT_EQ(List(path), std::vector<std::string>{"inside"});
}

}  // namespace

// A target that is a device or a FIFO is written to, never renamed over: a
// profile sent to /dev/null as root had turned the device into a plain file.
TEST_F(ProfileFileTest, DevicesAndFifosAreWrittenToNeverReplaced) {
  char err[512] = "";
  struct stat before;
  ASSERT_EQ(stat("/dev/null", &before), 0);
  ASSERT_TRUE(S_ISCHR(before.st_mode));
  EXPECT_EQ(WriteFileReplacing("/dev/null", "abc", 3, kProfileFileMode, err, sizeof(err)), 0)
      << err;
  struct stat after;
  ASSERT_EQ(stat("/dev/null", &after), 0);
  EXPECT_TRUE(S_ISCHR(after.st_mode));
  EXPECT_EQ(after.st_rdev, before.st_rdev);
  EXPECT_EQ(after.st_ino, before.st_ino);

  const std::string fifo = dir_ + "/fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  std::string got;
  std::thread reader([&] {
    const int fd = open(fifo.c_str(), O_RDONLY | O_CLOEXEC);
    char buf[64];
    for (ssize_t r; fd >= 0 && (r = read(fd, buf, sizeof(buf))) > 0;) got.append(buf, r);
    if (fd >= 0) close(fd);
  });
  EXPECT_EQ(WriteFileReplacing(fifo.c_str(), "profile", 7, kProfileFileMode, err, sizeof(err)), 0)
      << err;
  reader.join();
  EXPECT_EQ(got, "profile");
  struct stat st;
  ASSERT_EQ(lstat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));

  const std::string sub = dir_ + "/subdir";
  ASSERT_EQ(mkdir(sub.c_str(), 0700), 0);
  EXPECT_EQ(WriteFileReplacing(sub.c_str(), "x", 1, kProfileFileMode, err, sizeof(err)), EINVAL);
  EXPECT_NE(std::strstr(err, "not a regular file"), nullptr) << err;
  ASSERT_EQ(lstat(sub.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
}
